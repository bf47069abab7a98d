//! Maps and sets keyed by request or stream ids.
//!
//! Every call touches several of them (a request in flight, a peer's open request, a handler's
//! abort handle), and with the standard library's SipHash the hashing alone was about 7 % of a
//! small call's instructions (`valgrind --tool=callgrind` over `zs-bench rpc`). foldhash (the
//! default hasher of `hashbrown`) is several times faster on integers and seeded at random
//! per process; it is only minimally resistant to chosen keys, which is enough here because
//! every map a peer can fill is bounded (open requests by `max_concurrent_requests`, streams
//! by the mux's limits), so colliding ids can slow a peer's own connection, not the server.

use std::collections::{HashMap, HashSet};

/// The hasher of [`IdMap`] and [`IdSet`].
pub type IdHasher = foldhash::fast::RandomState;

/// A map keyed by ids; create with `IdMap::default()`.
pub type IdMap<K, V> = HashMap<K, V, IdHasher>;

/// A set of ids; create with `IdSet::default()`.
pub type IdSet<K> = HashSet<K, IdHasher>;
