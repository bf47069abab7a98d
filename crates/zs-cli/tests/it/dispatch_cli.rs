//! `zs serve --dispatch` with two `zs serve --register logic` servers: `zs dispatch`
//! sends clients to the less-loaded one, and a killed server leaves the registry.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::files_cli::FileServer;

fn dispatch(dispatcher: &FileServer, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args([
            "dispatch",
            "--connect",
            dispatcher.addr(),
            "--pin",
            dispatcher.fingerprint(),
        ])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn listed(dispatcher: &FileServer) -> Vec<serde_json::Value> {
    let (ok, stdout, stderr) = dispatch(dispatcher, &["list", "logic"]);
    assert!(ok, "{stderr}");
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn servers_register_and_a_killed_one_leaves() {
    let dispatcher =
        FileServer::start_with(|dir| vec!["--dispatch".into(), dir.join("registry").into()]);
    let register = |id: &str| {
        let (addr, id) = (dispatcher.addr().to_owned(), id.to_owned());
        FileServer::start_with(move |_| {
            vec![
                "--register".into(),
                "logic".into(),
                "--dispatcher".into(),
                addr.into(),
                "--id".into(),
                id.into(),
            ]
        })
    };
    let one = register("logic-1");
    let two = register("logic-2");
    wait_for("both registered", || listed(&dispatcher).len() == 2);
    let (ok, stdout, stderr) = dispatch(&dispatcher, &["best", "logic", "--address"]);
    assert!(ok, "{stderr}");
    let best = stdout.trim().to_owned();
    assert!(best == one.addr() || best == two.addr(), "{best}");

    // Kill the chosen one (no goodbye): it leaves within its 3 s time to live, and
    // clients are sent to the other.
    let (dead, alive) = if best == one.addr() {
        (one, two)
    } else {
        (two, one)
    };
    drop(dead);
    wait_for("the killed server left", || listed(&dispatcher).len() == 1);
    let (ok, stdout, _) = dispatch(&dispatcher, &["best", "logic", "--address"]);
    assert!(ok);
    assert_eq!(stdout.trim(), alive.addr());
    drop(alive);
}
