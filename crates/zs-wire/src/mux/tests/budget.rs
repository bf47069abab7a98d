//! The connection-wide receive budget.

use super::*;

// ------------------------------------------------------------------ receive budget

fn budget_pair(budget: usize, stream_window: u32) -> Pair {
    let config = MuxConfig {
        max_buffered: Some(budget),
        stream_window,
        ..MuxConfig::default()
    };
    let mut pair = Pair::with_config(config);
    pair.server.listen("echo").unwrap();
    pair.client.listen("back").unwrap();
    pair
}

#[test]
fn the_receive_budget_admits_streams_by_their_initial_window() {
    let window = INITIAL_WINDOW as usize;
    let mut pair = budget_pair(3 * window + 1000, INITIAL_WINDOW);
    let opened: Vec<StreamId> = (0..3)
        .map(|_| pair.client.open_stream("echo").unwrap())
        .collect();
    // This side has committed three initial windows: a fourth local open is refused.
    assert_eq!(
        pair.client.open_stream("echo"),
        Err(MuxError::BudgetExhausted {
            max: 3 * window + 1000
        })
    );
    pair.drive();
    assert_eq!(pair.server.stream_count(), 3);
    assert_eq!(pair.server.stats().committed_receive, 3 * window);
    // The server's budget is full too: the client's fourth stream (opened by a client
    // with room) would be refused with RST, not a protocol error.
    let mut roomy = Mux::new(MuxConfig::default(), Role::Initiator, pair.now);
    for _ in 0..3 {
        roomy.open_stream("echo").unwrap();
    }
    let fourth = roomy.open_stream("echo").unwrap();
    let mut wire = BytesMut::new();
    roomy.poll_transmit(&mut wire, usize::MAX);
    let mut target = Mux::new(
        MuxConfig {
            max_buffered: Some(3 * window + 1000),
            ..MuxConfig::default()
        },
        Role::Acceptor,
        pair.now,
    );
    target.listen("echo").unwrap();
    target.handle_received(&mut wire, pair.now).unwrap();
    assert_eq!(target.stream_count(), 3);
    assert_eq!(target.stats().refused_streams, 1);
    let answers = transmitted(&mut target);
    assert!(
        answers
            .iter()
            .any(|(h, _)| h.stream_id == fourth.0 && h.flags == Flags::RST)
    );
    // Closing a stream frees its share: the next open fits again.
    pair.client.reset(opened[0]).unwrap();
    assert!(pair.client.open_stream("echo").is_ok());
}

#[test]
fn the_receive_budget_bounds_what_slow_readers_hold_and_withholds_extra_window() {
    // Windows of 1 MiB, a budget of 2.5 MiB: two streams get their full windows, the
    // third only what is left; nothing the peer can send exceeds the budget.
    let window = 1024 * 1024;
    let budget = 5 * window as usize / 2;
    let mut pair = budget_pair(budget, window);
    let ids: Vec<StreamId> = (0..3)
        .map(|_| pair.client.open_stream("echo").unwrap())
        .collect();
    pair.drive();
    // Each stream carries half an initial window first: busy streams grow past it.
    for &id in &ids {
        pair.client
            .write(id, &vec![1u8; INITIAL_WINDOW as usize / 2])
            .unwrap();
        pair.drive();
        read_all(&mut pair.server, id);
        pair.drive();
    }
    let big = vec![9u8; 4 * window as usize];
    let mut accepted = Vec::new();
    for &id in &ids {
        accepted.push(pair.client.write(id, &big).unwrap());
    }
    pair.drive();
    for &id in &ids {
        accepted.push(pair.client.write(id, &big).unwrap());
    }
    pair.drive();
    let held: usize = ids
        .iter()
        .map(|&id| pair.server.readable_len(id).unwrap())
        .sum();
    eprintln!("accepted {accepted:?}, server holds {held} bytes of a {budget} budget");
    assert!(held <= budget, "{held} > {budget}");
    assert!(pair.server.stats().committed_receive <= budget);
    // The first two got 1 MiB windows, the third the rest of the budget.
    assert_eq!(pair.server.readable_len(ids[0]), Some(window as usize));
    assert_eq!(pair.server.readable_len(ids[1]), Some(window as usize));
    assert_eq!(
        pair.server.readable_len(ids[2]),
        Some(budget - 2 * window as usize)
    );

    // The third stream's reader keeps reading while the others hold their data: it always
    // gets back at least its initial window, so it keeps moving.
    let mut moved = 0;
    for _ in 0..20 {
        moved += read_all(&mut pair.server, ids[2]).len();
        pair.client.write(ids[2], &big).unwrap();
        pair.drive();
        let held: usize = ids
            .iter()
            .map(|&id| pair.server.readable_len(id).unwrap())
            .sum();
        assert!(held <= budget, "{held} > {budget}");
        assert!(pair.server.stats().committed_receive <= budget);
    }
    assert!(moved >= 20 * INITIAL_WINDOW as usize, "moved {moved}");

    // Once a slow reader reads, its share returns to the pool and the third stream's owed
    // window is granted as it reads on.
    read_all(&mut pair.server, ids[0]);
    pair.client.write(ids[0], &big).unwrap();
    read_all(&mut pair.server, ids[2]);
    pair.client.write(ids[2], &big).unwrap();
    pair.drive();
    read_all(&mut pair.server, ids[2]);
    pair.drive();
    pair.client.write(ids[2], &big).unwrap();
    pair.drive();
    assert!(pair.server.stats().committed_receive <= budget);
    let total: usize = ids
        .iter()
        .map(|&id| pair.server.readable_len(id).unwrap())
        .sum();
    assert!(total <= budget);
}

#[test]
fn without_a_budget_the_commitment_is_still_counted() {
    let mut pair = Pair::new();
    pair.server.listen("echo").unwrap();
    let a = pair.client.open_stream("echo").unwrap();
    let _b = pair.client.open_stream("echo").unwrap();
    pair.drive();
    assert_eq!(
        pair.server.stats().committed_receive,
        2 * INITIAL_WINDOW as usize
    );
    pair.client.write(a, &[1u8; 1000]).unwrap();
    pair.client.close(a).unwrap();
    pair.server.close(a).unwrap();
    pair.drive();
    read_all(&mut pair.server, a);
    pair.drive();
    assert_eq!(pair.server.stream_count(), 1);
    assert_eq!(
        pair.server.stats().committed_receive,
        INITIAL_WINDOW as usize
    );
}

#[test]
fn with_a_budget_a_stream_reserves_its_initial_window_until_it_carries_data() {
    // 4 MiB windows, a budget of ten initial windows: granting every new stream its full
    // window at once would admit two; idle streams reserve 256 KiB each, so nine fit.
    let window = 4 * 1024 * 1024;
    let budget = 10 * INITIAL_WINDOW as usize;
    let mut pair = budget_pair(budget, window);
    let ids: Vec<StreamId> = (0..9)
        .map(|_| pair.client.open_stream("echo").unwrap())
        .collect();
    pair.drive();
    assert_eq!(pair.server.stream_count(), 9);
    assert_eq!(
        pair.server.stats().committed_receive,
        9 * INITIAL_WINDOW as usize
    );
    // A small exchange does not grow the window.
    pair.client.write(ids[0], &[7u8; 1000]).unwrap();
    pair.drive();
    assert_eq!(read_all(&mut pair.server, ids[0]).len(), 1000);
    pair.drive();
    assert_eq!(
        pair.server.stats().committed_receive,
        9 * INITIAL_WINDOW as usize
    );
    // A bulk stream grows into the budget's free room once it has carried half a window.
    let big = vec![9u8; 2 * 1024 * 1024];
    let mut moved = 0;
    for _ in 0..8 {
        pair.client.write(ids[1], &big).unwrap();
        pair.drive();
        moved += read_all(&mut pair.server, ids[1]).len();
        pair.drive();
    }
    let committed = pair.server.stats().committed_receive;
    assert!(committed > 9 * INITIAL_WINDOW as usize, "{committed}");
    assert!(committed <= budget, "{committed} > {budget}");
    assert!(moved > 8 * INITIAL_WINDOW as usize, "moved {moved}");
}
