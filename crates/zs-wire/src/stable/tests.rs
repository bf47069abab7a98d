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
        let mut moved = self.client.poll_link_transmit(&mut link.to_server, chunk);
        moved += match &mut link.server {
            ServerSide::Pending(pending) => pending.poll_transmit(&mut link.to_client, chunk),
            ServerSide::Bound(id) => match self.registry.get_mut(*id) {
                Some(endpoint) => endpoint.poll_link_transmit(&mut link.to_client, chunk),
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

#[test]
fn a_session_opens_and_carries_bytes_both_ways() {
    let mut net = Network::new(StableConfig::default(), 1);
    let id = open(&mut net);
    assert_eq!(net.registry.len(), 1);
    assert_eq!(net.client.write(b"hello"), 5);
    net.session().unwrap().write(b"world");
    net.settle();
    let mut out = BytesMut::new();
    net.client.read(&mut out);
    assert_eq!(&out[..], b"world");
    let server = net.registry.get_mut(id).unwrap();
    out.clear();
    server.read(&mut out);
    assert_eq!(&out[..], b"hello");
    assert!(events(server).contains(&StableEvent::Readable));
}

#[test]
fn bytes_written_before_the_session_opens_are_sent_once_it_is() {
    let mut net = Network::new(StableConfig::default(), 2);
    assert_eq!(net.client.write(b"early"), 5);
    let id = open(&mut net);
    let mut out = BytesMut::new();
    net.registry.get_mut(id).unwrap().read(&mut out);
    assert_eq!(&out[..], b"early");
}

/// The main promise: 100,000 counters each way across 200 cuts at random byte
/// positions, with random delays, arrive exactly once and in order.
#[test]
fn counters_survive_200_random_cuts_in_both_directions() {
    const TOTAL: u32 = 100_000;
    const CUTS: u32 = 200;
    let config = StableConfig {
        window: 64 * 1024,
        segment_size: 1500,
        ..StableConfig::default()
    };
    let mut net = Network::new(config.clone(), 0x5eed_1234_abcd_0001);
    let id = open(&mut net);
    net.chunk = 1200;
    let mut up = Counter::new();
    let mut down = Counter::new();
    let mut cuts = 0;
    let mut resumes = 0;
    let mut steps = 0u64;
    while up.next_read < TOTAL || down.next_read < TOTAL {
        steps += 1;
        assert!(
            steps < 2_000_000,
            "no progress: {} / {}",
            up.next_read,
            down.next_read
        );
        let burst = net.rng.below(200) as u32;
        up.write(&mut net.client, burst, TOTAL);
        if net.rng.below(3) > 0 {
            up.read(net.registry.get_mut(id).unwrap());
        }
        {
            let server = net.registry.get_mut(id).unwrap();
            down.write(server, burst, TOTAL);
        }
        if net.rng.below(3) > 0 {
            down.read(&mut net.client);
        }
        if net.link.is_some() {
            let _ = net.step(true);
            if cuts < CUTS && net.rng.below(4) == 0 {
                net.cut();
                cuts += 1;
            }
        } else {
            // Reconnect after a short outage (well within the give-up time).
            let attempt = net.rng.below(4) as u32;
            net.advance(config.reconnect_delay(attempt));
            net.connect();
        }
        let pause = Duration::from_millis(net.rng.below(5));
        net.advance(pause);
        resumes += events(&mut net.client)
            .iter()
            .filter(|event| **event == StableEvent::Resumed)
            .count();
        let server = net.registry.get_mut(id).unwrap();
        let _ = events(server);
        assert!(server.buffered_bytes() <= 2 * config.window);
        assert!(net.client.buffered_bytes() <= 2 * config.window);
    }
    assert_eq!(cuts, CUTS, "finished after {steps} steps");
    assert!(resumes >= (CUTS / 2) as usize, "only {resumes} resumes");
    assert!(
        net.lost_bytes > 100_000,
        "cuts lost only {} bytes",
        net.lost_bytes
    );
    assert!(net.client_errors.is_empty(), "{:?}", net.client_errors);
    assert!(net.server_errors.is_empty(), "{:?}", net.server_errors);
    assert!(!net.client.is_expired());
    // Everything is acknowledged once the link settles.
    if net.link.is_none() {
        net.connect();
    }
    net.settle();
    net.advance(config.ack_delay);
    net.settle();
    assert_eq!(net.client.unacked_len(), 0);
    assert_eq!(net.registry.get_mut(id).unwrap().unacked_len(), 0);
}

#[test]
fn a_cut_mid_frame_loses_nothing() {
    let mut net = Network::new(StableConfig::default(), 3);
    let id = open(&mut net);
    let data: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
    assert_eq!(net.client.write(&data), data.len());
    // Deliver part of a Data frame, then cut.
    net.chunk = 1000;
    let _ = net.step(false);
    net.cut();
    net.chunk = 4096;
    net.connect();
    net.settle();
    assert!(events(&mut net.client).contains(&StableEvent::Resumed));
    let mut out = BytesMut::new();
    net.registry.get_mut(id).unwrap().read(&mut out);
    assert_eq!(&out[..], &data[..]);
}

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

#[test]
fn resume_with_a_wrong_proof_or_unknown_session_is_refused() {
    let mut net = Network::new(StableConfig::default(), 4);
    let id = open(&mut net);
    let (result, frames) = resume_with(
        &mut net.registry,
        |_| Frame::Resume {
            session_id: id,
            proof: [0x55; 32],
            next_expected: 0,
        },
        b"x",
    );
    assert_eq!(result, Err(StableError::BadProof));
    assert_eq!(
        frames,
        vec![Frame::Refused {
            reason: RefuseReason::BadProof
        }]
    );
    let (result, frames) = resume_with(
        &mut net.registry,
        |_| Frame::Resume {
            session_id: SessionId([9; 16]),
            proof: [0; 32],
            next_expected: 0,
        },
        b"x",
    );
    assert_eq!(result, Err(StableError::UnknownSession));
    assert_eq!(
        frames,
        vec![Frame::Refused {
            reason: RefuseReason::UnknownSession
        }]
    );
    // The session itself is untouched and still resumes.
    net.cut();
    net.connect();
    net.settle();
    assert!(events(&mut net.client).contains(&StableEvent::Resumed));
}

#[test]
fn a_client_refused_for_good_expires_with_a_clear_error() {
    let mut net = Network::new(StableConfig::default(), 5);
    let id = open(&mut net);
    net.cut();
    net.registry.remove(id);
    net.connect();
    net.settle();
    assert_eq!(
        net.client_errors,
        vec![StableError::Refused {
            reason: RefuseReason::UnknownSession
        }]
    );
    assert!(net.client.is_expired());
    assert!(events(&mut net.client).contains(&StableEvent::Expired));
    assert_eq!(net.client.write(b"more"), 0);
}

#[test]
fn a_captured_resume_replayed_on_another_link_is_refused() {
    let mut net = Network::new(StableConfig::default(), 6);
    let id = open(&mut net);
    net.cut();
    // A new link: capture the client's Resume instead of delivering it.
    net.connect();
    let link = net.link.as_mut().unwrap();
    let mut captured = BytesMut::new();
    net.client.poll_link_transmit(&mut captured, usize::MAX);
    assert!(captured.is_empty(), "nothing before the challenge");
    let ServerSide::Pending(pending) = &mut link.server else {
        panic!("bound too early");
    };
    pending.poll_transmit(&mut link.client_in, usize::MAX);
    net.client
        .handle_link_bytes(&mut link.client_in, net.now)
        .unwrap();
    net.client.poll_link_transmit(&mut captured, usize::MAX);
    let resume = Frame::decode(&mut captured.clone()).unwrap().unwrap();
    assert!(matches!(resume, Frame::Resume { session_id, .. } if session_id == id));
    // The attacker replays it on a link of its own, with the same link secret even.
    let secret = net.link_counter.to_le_bytes();
    let (result, frames) = resume_with(&mut net.registry, |_| resume.clone(), &secret);
    assert_eq!(result, Err(StableError::BadProof));
    assert_eq!(
        frames,
        vec![Frame::Refused {
            reason: RefuseReason::BadProof
        }]
    );
    // The genuine link still resumes.
    let link = net.link.as_mut().unwrap();
    link.to_server.extend_from_slice(&captured);
    net.settle();
    assert!(events(&mut net.client).contains(&StableEvent::Resumed));
}

#[test]
fn a_resume_proof_is_bound_to_the_link_secret() {
    let mut net = Network::new(StableConfig::default(), 7);
    let id = open(&mut net);
    let secret = *net.client.secret.as_ref().unwrap().clone();
    let client_link = link_key(b"client's link");
    // A valid proof for one link secret, presented on a link with another.
    let (result, _) = resume_with(
        &mut net.registry,
        |nonce| Frame::Resume {
            session_id: id,
            proof: resume_proof(&secret, id, nonce, 0, &client_link),
            next_expected: 0,
        },
        b"attacker's link",
    );
    assert_eq!(result, Err(StableError::BadProof));
    // The same proof on the right link secret is accepted.
    let (result, frames) = resume_with(
        &mut net.registry,
        |nonce| Frame::Resume {
            session_id: id,
            proof: resume_proof(&secret, id, nonce, 0, &client_link),
            next_expected: 0,
        },
        b"client's link",
    );
    assert_eq!(result, Ok(Some(id)));
    assert!(frames.is_empty()); // the answer is queued on the session's endpoint
}

#[test]
fn an_ack_for_data_never_sent_is_an_error_that_ends_only_the_link() {
    let mut net = Network::new(StableConfig::default(), 8);
    let id = open(&mut net);
    net.client.write(b"abc");
    net.settle();
    let server = net.registry.get_mut(id).unwrap();
    let mut input = BytesMut::new();
    Frame::Ack { next_expected: 10 }.encode(&mut input);
    assert_eq!(
        server.handle_link_bytes(&mut input, net.now),
        Err(StableError::AckBeyondSent { ack: 10, sent: 0 })
    );
    assert!(!server.is_linked());
    assert!(!server.is_expired());
    // The client's ack beyond what the server sent, the other way round.
    let mut input = BytesMut::new();
    Frame::Ack { next_expected: 4 }.encode(&mut input);
    assert_eq!(
        net.client.handle_link_bytes(&mut input, net.now),
        Err(StableError::AckBeyondSent { ack: 4, sent: 3 })
    );
    net.cut();
    net.connect();
    net.settle();
    let mut out = BytesMut::new();
    net.registry.get_mut(id).unwrap().read(&mut out);
    assert_eq!(&out[..], b"abc");
}

#[test]
fn data_with_a_gap_or_beyond_the_window_is_an_error() {
    let mut net = Network::new(StableConfig::default(), 9);
    let id = open(&mut net);
    let server = net.registry.get_mut(id).unwrap();
    let mut input = BytesMut::new();
    Frame::Data {
        offset: 5,
        bytes: bytes::Bytes::from_static(b"x"),
    }
    .encode(&mut input);
    assert_eq!(
        server.handle_link_bytes(&mut input, net.now),
        Err(StableError::DataGap {
            offset: 5,
            expected: 0
        })
    );
    net.cut();
    net.connect();
    net.settle();
    let window = StableConfig::default().window as u64;
    let server = net.registry.get_mut(id).unwrap();
    let mut input = BytesMut::new();
    Frame::Data {
        offset: 0,
        bytes: bytes::Bytes::from(vec![0; MAX_SEGMENT]),
    }
    .encode(&mut input);
    for i in 1..(window as usize / MAX_SEGMENT) + 1 {
        Frame::Data {
            offset: (i * MAX_SEGMENT) as u64,
            bytes: bytes::Bytes::from(vec![0; MAX_SEGMENT]),
        }
        .encode(&mut input);
    }
    assert_eq!(
        server.handle_link_bytes(&mut input, net.now),
        Err(StableError::DataBeyondWindow {
            end: window + MAX_SEGMENT as u64,
            limit: window
        })
    );
    assert!(server.buffered_bytes() <= 2 * StableConfig::default().window);
}

#[test]
fn duplicate_and_overlapping_data_is_delivered_once() {
    let mut net = Network::new(StableConfig::default(), 10);
    let id = open(&mut net);
    let server = net.registry.get_mut(id).unwrap();
    let mut input = BytesMut::new();
    for (offset, bytes) in [(0, &b"abc"[..]), (0, b"abc"), (1, b"bcde"), (5, b"f")] {
        Frame::Data {
            offset,
            bytes: bytes::Bytes::copy_from_slice(bytes),
        }
        .encode(&mut input);
    }
    server.handle_link_bytes(&mut input, net.now).unwrap();
    let mut out = BytesMut::new();
    server.read(&mut out);
    assert_eq!(&out[..], b"abcdef");
}

#[test]
fn the_client_gives_up_after_the_configured_time_and_the_server_forgets() {
    let config = StableConfig {
        give_up_after: Duration::from_secs(30),
        ..StableConfig::default()
    };
    let mut net = Network::new(config, 11);
    let id = open(&mut net);
    net.client.write(b"pending");
    net.cut();
    net.advance(Duration::from_secs(29));
    assert!(!net.client.is_expired());
    assert_eq!(net.registry.len(), 1);
    // A link that never gets through the resume does not reset the clock.
    net.connect();
    net.advance(Duration::from_secs(1));
    assert!(net.client.is_expired());
    assert!(events(&mut net.client).contains(&StableEvent::Expired));
    assert_eq!(net.client.poll_timeout(), None);
    assert_eq!(net.registry.len(), 0);
    assert!(net.registry.get_mut(id).is_none());
    assert_eq!(net.client.write(b"x"), 0);
    assert_eq!(net.client.buffered_bytes(), 0);
}

#[test]
fn a_resume_after_the_server_expired_the_session_is_refused_as_expired() {
    let config = StableConfig {
        give_up_after: Duration::from_secs(10),
        ..StableConfig::default()
    };
    let mut net = Network::new(config, 12);
    let id = open(&mut net);
    let secret = *net.client.secret.as_ref().unwrap().clone();
    net.cut();
    // No registry timer ran yet, but the time has passed.
    let later = net.now + Duration::from_secs(11);
    let mut link = net.registry.new_link(b"k").unwrap();
    let mut sent = BytesMut::new();
    link.poll_transmit(&mut sent, usize::MAX);
    let Some(Frame::Challenge { nonce }) = Frame::decode(&mut sent).unwrap() else {
        panic!();
    };
    let mut input = BytesMut::new();
    Frame::Resume {
        session_id: id,
        proof: resume_proof(&secret, id, &nonce, 0, &link_key(b"k")),
        next_expected: 0,
    }
    .encode(&mut input);
    assert_eq!(
        net.registry
            .handle_pending_link(&mut link, &mut input, later),
        Err(StableError::Expired)
    );
    assert_eq!(net.registry.len(), 0);
}

#[test]
fn the_window_cap_blocks_writes_until_acks_arrive() {
    let config = StableConfig {
        window: MIN_WINDOW,
        ..StableConfig::default()
    };
    let mut net = Network::new(config, 13);
    let id = open(&mut net);
    let big = vec![7u8; 3 * MIN_WINDOW];
    assert_eq!(net.client.write(&big), MIN_WINDOW);
    assert_eq!(net.client.write(&big), 0);
    net.settle();
    // Delivered but unread: still unacknowledged, still blocked.
    assert_eq!(net.client.unacked_len(), MIN_WINDOW);
    assert_eq!(net.client.write(&big), 0);
    let mut out = BytesMut::new();
    net.registry.get_mut(id).unwrap().read(&mut out);
    assert_eq!(out.len(), MIN_WINDOW);
    net.settle();
    assert_eq!(net.client.unacked_len(), 0);
    assert!(events(&mut net.client).contains(&StableEvent::Writable));
    assert_eq!(net.client.write(&big), MIN_WINDOW);
}

#[test]
fn a_small_read_is_acked_after_the_ack_delay() {
    let mut net = Network::new(StableConfig::default(), 14);
    let id = open(&mut net);
    net.client.write(b"tiny");
    net.settle();
    let mut out = BytesMut::new();
    net.registry.get_mut(id).unwrap().read(&mut out);
    net.settle();
    assert_eq!(net.client.unacked_len(), 4);
    let deadline = net.registry.poll_timeout().unwrap();
    net.advance(deadline - net.now);
    net.settle();
    assert_eq!(net.client.unacked_len(), 0);
}

#[test]
fn max_sessions_refuses_new_sessions() {
    let config = StableConfig {
        max_sessions: 3,
        ..StableConfig::default()
    };
    let mut registry = StableRegistry::new(config);
    for _ in 0..3 {
        let (result, _) = resume_with(&mut registry, |_| Frame::Open, b"");
        assert!(matches!(result, Ok(Some(_))));
    }
    let (result, frames) = resume_with(&mut registry, |_| Frame::Open, b"");
    assert_eq!(result, Err(StableError::TooManySessions { max: 3 }));
    assert_eq!(
        frames,
        vec![Frame::Refused {
            reason: RefuseReason::TooManySessions
        }]
    );
    assert_eq!(registry.len(), 3);
}

#[test]
fn orderly_close_ends_the_session_on_both_sides() {
    let mut net = Network::new(StableConfig::default(), 15);
    let id = open(&mut net);
    net.client.write(b"bye");
    net.client.close();
    assert_eq!(net.client.write(b"late"), 0);
    net.settle();
    let server = net.registry.get_mut(id).unwrap();
    let mut out = BytesMut::new();
    server.read(&mut out);
    assert_eq!(&out[..], b"bye");
    assert!(events(server).contains(&StableEvent::PeerClosed));
    server.write(b"ok");
    server.close();
    net.settle();
    let mut out = BytesMut::new();
    net.client.read(&mut out);
    assert_eq!(&out[..], b"ok");
    let client_events = events(&mut net.client);
    assert!(client_events.contains(&StableEvent::PeerClosed));
    assert!(
        client_events.contains(&StableEvent::Closed),
        "{client_events:?}"
    );
    net.settle();
    assert!(net.registry.get_mut(id).unwrap().is_closed());
    net.advance(Duration::from_millis(1));
    assert_eq!(net.registry.len(), 0);
}

#[test]
fn frames_out_of_place_and_bad_headers_are_errors() {
    let mut net = Network::new(StableConfig::default(), 16);
    let id = open(&mut net);
    let server = net.registry.get_mut(id).unwrap();
    let mut input = BytesMut::from(&[7u8, 0xff, 0xff, 0xff, 0xff][..]);
    assert_eq!(
        server.handle_link_bytes(&mut input, net.now),
        Err(StableError::FrameTooLarge {
            len: u32::MAX,
            max: MAX_BODY
        })
    );
    assert!(input.is_empty());
    let mut registry = StableRegistry::new(StableConfig::default());
    let (result, _) = resume_with(&mut registry, |_| Frame::Ack { next_expected: 0 }, b"");
    assert!(matches!(result, Err(StableError::Malformed { .. })));
    let mut link = registry.new_link(b"").unwrap();
    let mut input = BytesMut::from(&[0x42u8, 0, 0, 0, 0][..]);
    assert_eq!(
        registry.handle_pending_link(&mut link, &mut input, net.now),
        Err(StableError::UnknownFrameType { frame_type: 0x42 })
    );
    let mut input = BytesMut::from(&[1u8, 1, 0, 0, 0, 0][..]);
    assert!(matches!(
        Frame::decode(&mut input),
        Err(StableError::Malformed { .. })
    ));
}

#[test]
fn every_frame_round_trips() {
    let frames = [
        Frame::Open,
        Frame::Opened {
            session_id: SessionId([1; 16]),
            share: [2; 32],
        },
        Frame::Challenge { nonce: [3; 32] },
        Frame::Resume {
            session_id: SessionId([4; 16]),
            proof: [5; 32],
            next_expected: u64::MAX,
        },
        Frame::Resumed { next_expected: 6 },
        Frame::Refused {
            reason: RefuseReason::Expired,
        },
        Frame::Data {
            offset: 7,
            bytes: bytes::Bytes::from_static(b"data"),
        },
        Frame::Ack { next_expected: 8 },
        Frame::Close { end: 9 },
    ];
    let mut buf = BytesMut::new();
    for frame in &frames {
        frame.encode(&mut buf);
    }
    assert_eq!(
        buf.len(),
        frames.iter().map(Frame::encoded_len).sum::<usize>()
    );
    for frame in &frames {
        assert_eq!(Frame::decode(&mut buf).unwrap().as_ref(), Some(frame));
    }
    assert!(buf.is_empty());
    // The documented layout of one frame.
    let mut buf = BytesMut::new();
    Frame::Ack {
        next_expected: 0x0102,
    }
    .encode(&mut buf);
    assert_eq!(&buf[..], &[8, 8, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn link_secrets_agree_between_roles() {
    let a = [1u8; 32];
    let b = [2u8; 32];
    assert_eq!(
        *link_secret(Role::Client, &a, &b, b"hash"),
        *link_secret(Role::Server, &b, &a, b"hash")
    );
    assert_ne!(
        *link_secret(Role::Client, &a, &b, b"hash"),
        *link_secret(Role::Client, &b, &a, b"hash")
    );
}

#[test]
fn reconnect_delay_backs_off_to_the_cap() {
    let config = StableConfig::default();
    assert_eq!(config.reconnect_delay(0), Duration::from_millis(250));
    assert_eq!(config.reconnect_delay(2), Duration::from_secs(1));
    assert_eq!(config.reconnect_delay(100), Duration::from_secs(5));
}

/// Feeds `input` in chunks to a freshly accepted server link (then, if it binds, to the
/// session): never panics; the registry and sessions stay bounded.
fn server_gets(input: &[u8], chunk: usize, open_first: bool) {
    let config = StableConfig {
        window: MIN_WINDOW,
        max_sessions: 4,
        ..StableConfig::default()
    };
    let window = config.window;
    let mut registry = StableRegistry::new(config);
    let mut now = Instant::now();
    let mut link = registry.new_link(b"fuzz").unwrap();
    let mut buf = BytesMut::new();
    if open_first {
        Frame::Open.encode(&mut buf);
    }
    let mut bound = None;
    let mut sink = BytesMut::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.put_slice(piece);
        if bound.is_none() {
            match registry.handle_pending_link(&mut link, &mut buf, now) {
                Ok(Some(id)) => bound = Some(id),
                Ok(None) => {}
                Err(_) => return,
            }
        }
        if let Some(id) = bound {
            let endpoint = registry.get_mut(id).unwrap();
            if endpoint.handle_link_bytes(&mut buf, now).is_err() {
                return;
            }
            let mut out = BytesMut::new();
            endpoint.read(&mut out);
            endpoint.write(&out);
            endpoint.poll_link_transmit(&mut sink, 1 << 20);
            sink.clear();
            assert!(endpoint.buffered_bytes() <= 2 * window + 1024);
        }
        assert!(buf.len() <= HEADER_LEN + MAX_BODY as usize);
        now += Duration::from_millis(10);
        registry.handle_timeout(now);
        assert!(registry.len() <= 4);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_into_a_server_link_never_panic(
        input in proptest::collection::vec(any::<u8>(), 0..4096),
        chunk in 1usize..512,
        open_first in any::<bool>(),
    ) {
        server_gets(&input, chunk, open_first);
    }

    #[test]
    fn random_frames_into_a_server_link_never_panic(
        frames in proptest::collection::vec((1u8..=9, any::<u64>(), 0usize..64), 0..64),
        chunk in 1usize..512,
    ) {
        let mut input = BytesMut::new();
        for (kind, value, len) in frames {
            let frame = match kind {
                7 => Frame::Data { offset: value % 4096, bytes: bytes::Bytes::from(vec![1; len + 1]) },
                8 => Frame::Ack { next_expected: value % 4096 },
                9 => Frame::Close { end: value % 4096 },
                5 => Frame::Resumed { next_expected: value },
                4 => Frame::Resume { session_id: SessionId([len as u8; 16]), proof: [0; 32], next_expected: value },
                _ => Frame::Open,
            };
            frame.encode(&mut input);
        }
        server_gets(&input, chunk, true);
    }
}
