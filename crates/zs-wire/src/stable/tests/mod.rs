//! A client endpoint and a server registry over an in-memory network with a virtual clock
//! (quinn-proto's simulation idea): links carry bytes in chunks, can be cut at any byte (mid
//! frame), and the client reconnects with backoff. Plus hostile input and property tests.

use bytes::BufMut;
use proptest::prelude::*;

use super::*;

/// A fixed-seed xorshift64*: the simulations are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `poll_link_transmit`, checking the runtime's wake-up rule on the way: an endpoint that
/// sends something said so in `wants_transmit` (else a driver asleep would never send it).
fn transmit(endpoint: &mut StableEndpoint, out: &mut BytesMut, max: usize) -> usize {
    let wanted = endpoint.wants_transmit();
    let moved = endpoint.poll_link_transmit(out, max);
    assert!(wanted || moved == 0, "{moved} bytes sent unannounced");
    moved
}

enum ServerSide {
    Pending(PendingLink),
    Bound(SessionId),
    Refused,
}

struct Link {
    /// Bytes in flight, not yet delivered.
    to_server: BytesMut,
    to_client: BytesMut,
    /// Delivered, not yet (completely) consumed by the receiver.
    server_in: BytesMut,
    client_in: BytesMut,
    server: ServerSide,
}

struct Network {
    now: Instant,
    rng: Rng,
    client: StableEndpoint,
    registry: StableRegistry,
    link: Option<Link>,
    link_counter: u64,
    /// The most bytes one hop moves per step (delay = small chunks).
    chunk: usize,
    client_errors: Vec<StableError>,
    server_errors: Vec<StableError>,
    /// Bytes thrown away by cuts: in flight or partial frames.
    lost_bytes: usize,
}

impl Network {
    fn new(config: StableConfig, seed: u64) -> Self {
        let now = Instant::now();
        Self {
            now,
            rng: Rng(seed),
            client: StableEndpoint::new_client(config.clone(), now),
            registry: StableRegistry::new(config),
            link: None,
            link_counter: 0,
            chunk: 4096,
            client_errors: Vec::new(),
            server_errors: Vec::new(),
            lost_bytes: 0,
        }
    }

    fn connect(&mut self) {
        self.link_counter += 1;
        let secret = self.link_counter.to_le_bytes();
        self.client.link_established(self.now, &secret);
        let pending = self.registry.new_link(&secret).unwrap();
        self.link = Some(Link {
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            server_in: BytesMut::new(),
            client_in: BytesMut::new(),
            server: ServerSide::Pending(pending),
        });
    }

    /// Drops the link as it is: bytes in flight and partial frames are lost.
    fn cut(&mut self) {
        if let Some(link) = self.link.take() {
            self.lost_bytes += link.to_server.len()
                + link.to_client.len()
                + link.server_in.len()
                + link.client_in.len();
            self.client.link_lost(self.now);
            if let ServerSide::Bound(id) = link.server
                && let Some(endpoint) = self.registry.get_mut(id)
            {
                endpoint.link_lost(self.now);
            }
        }
    }

    fn session(&mut self) -> Option<&mut StableEndpoint> {
        let id = self.client.session_id()?;
        self.registry.get_mut(id)
    }

    /// One round: both sides transmit, each direction delivers up to `chunk` bytes (a random
    /// amount when `random`), both sides handle what arrived.
    /// Returns the bytes sent and delivered (0: the link is quiet).
    fn step(&mut self, random: bool) -> usize {
        let Some(link) = &mut self.link else {
            return 0;
        };
        let chunk = self.chunk;
        let mut moved = transmit(&mut self.client, &mut link.to_server, chunk);
        moved += match &mut link.server {
            ServerSide::Pending(pending) => pending.poll_transmit(&mut link.to_client, chunk),
            ServerSide::Bound(id) => match self.registry.get_mut(*id) {
                Some(endpoint) => transmit(endpoint, &mut link.to_client, chunk),
                None => 0,
            },
            ServerSide::Refused => 0,
        };
        let up = if random {
            self.rng.below(chunk as u64 + 1) as usize
        } else {
            chunk
        };
        let n = link.to_server.len().min(up);
        moved += n;
        link.server_in
            .extend_from_slice(&link.to_server.split_to(n));
        let down = if random {
            self.rng.below(chunk as u64 + 1) as usize
        } else {
            chunk
        };
        let n = link.to_client.len().min(down);
        moved += n;
        link.client_in
            .extend_from_slice(&link.to_client.split_to(n));

        if let ServerSide::Pending(pending) = &mut link.server {
            match self
                .registry
                .handle_pending_link(pending, &mut link.server_in, self.now)
            {
                Ok(Some(id)) => link.server = ServerSide::Bound(id),
                Ok(None) => {}
                Err(error) => {
                    pending.poll_transmit(&mut link.to_client, usize::MAX);
                    link.server = ServerSide::Refused;
                    self.server_errors.push(error);
                }
            }
        }
        if let ServerSide::Bound(id) = link.server
            && let Some(endpoint) = self.registry.get_mut(id)
            && let Err(error) = endpoint.handle_link_bytes(&mut link.server_in, self.now)
        {
            self.server_errors.push(error);
        }
        if let Err(error) = self.client.handle_link_bytes(&mut link.client_in, self.now) {
            self.client_errors.push(error);
        }
        moved
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.client.handle_timeout(self.now);
        self.registry.handle_timeout(self.now);
    }

    /// Steps (whole chunks) until nothing moves.
    fn settle(&mut self) {
        for _ in 0..100_000 {
            if self.step(false) == 0 {
                return;
            }
        }
        panic!("network never settled");
    }
}

fn events(endpoint: &mut StableEndpoint) -> Vec<StableEvent> {
    std::iter::from_fn(|| endpoint.poll_event()).collect()
}

/// A counter stream: the writer's next value and the reader's next expected value.
struct Counter {
    next_write: u32,
    pending: Vec<u8>,
    next_read: u32,
    partial: Vec<u8>,
}

impl Counter {
    fn new() -> Self {
        Self {
            next_write: 0,
            pending: Vec::new(),
            next_read: 0,
            partial: Vec::new(),
        }
    }

    /// Writes up to `count` more counters (of `total`).
    fn write(&mut self, endpoint: &mut StableEndpoint, count: u32, total: u32) {
        while self.pending.len() < 4 * count as usize && self.next_write < total {
            self.pending
                .extend_from_slice(&self.next_write.to_le_bytes());
            self.next_write += 1;
        }
        let n = endpoint.write(&self.pending);
        self.pending.drain(..n);
    }

    fn read(&mut self, endpoint: &mut StableEndpoint) {
        let mut out = BytesMut::new();
        endpoint.read(&mut out);
        self.partial.extend_from_slice(&out);
        let whole = self.partial.len() / 4 * 4;
        for bytes in self.partial[..whole].chunks_exact(4) {
            let value = u32::from_le_bytes(bytes.try_into().unwrap());
            assert_eq!(value, self.next_read, "lost, duplicated or reordered");
            self.next_read += 1;
        }
        self.partial.drain(..whole);
    }
}

fn open(net: &mut Network) -> SessionId {
    net.connect();
    net.settle();
    assert_eq!(events(&mut net.client), vec![StableEvent::Opened]);
    net.client.session_id().unwrap()
}

mod resume;
mod sessions;

/// Runs a pending link on the registry with the given client frame; returns the result and
/// the frames the server sent.
fn resume_with(
    registry: &mut StableRegistry,
    frame: impl FnOnce(&[u8; 32]) -> Frame,
    link_secret: &[u8],
) -> (Result<Option<SessionId>, StableError>, Vec<Frame>) {
    let mut link = registry.new_link(link_secret).unwrap();
    let mut sent = BytesMut::new();
    link.poll_transmit(&mut sent, usize::MAX);
    let Some(Frame::Challenge { nonce }) = Frame::decode(&mut sent).unwrap() else {
        panic!("no challenge");
    };
    let mut input = BytesMut::new();
    frame(&nonce).encode(&mut input);
    let result = registry.handle_pending_link(&mut link, &mut input, Instant::now());
    let mut answer = BytesMut::new();
    link.poll_transmit(&mut answer, usize::MAX);
    let mut frames = Vec::new();
    while let Ok(Some(frame)) = Frame::decode(&mut answer) {
        frames.push(frame);
    }
    (result, frames)
}

mod flow;
mod frames;
