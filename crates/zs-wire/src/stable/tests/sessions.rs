//! Sessions carrying bytes across links, cuts and reconnects.

use super::*;

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
