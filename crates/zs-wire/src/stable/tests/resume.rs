//! Resume proofs: refusals, replays and link binding.

use super::*;

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
