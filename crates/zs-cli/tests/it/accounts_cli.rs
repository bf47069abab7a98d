//! `zs user` and `zs call --user` against `zs serve --accounts DIR --require-login echo`.

use std::process::Command;

use crate::files_cli::{FileServer, fresh_dir};

fn zs(args: &[&str], password: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_zs"));
    command.args(args).env_remove("ZS_PASSWORD");
    if let Some(password) = password {
        command.env("ZS_PASSWORD", password);
    }
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn users_added_offline_log_in_to_call_a_gated_command() {
    let accounts = fresh_dir("accounts");
    let dir = accounts.join("users");
    let dir = dir.to_str().unwrap();
    let (ok, stdout, stderr) = zs(
        &["user", "--dir", dir, "add", "root", "--role", "admin"],
        Some("root password"),
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "added root");
    let (ok, _, stderr) = zs(
        &["user", "--dir", dir, "add", "bad name!"],
        Some("a password"),
    );
    assert!(!ok);
    assert!(stderr.contains("bad user name"), "{stderr}");
    let (ok, stdout, _) = zs(&["user", "--dir", dir, "list"], None);
    assert!(ok);
    let listed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(listed["name"], "root");
    assert_eq!(listed["roles"][0], "admin");

    let server = FileServer::start_with(|_| {
        vec![
            "--accounts".into(),
            dir.into(),
            "--require-login".into(),
            "echo".into(),
        ]
    });
    let call = |user: Option<&str>, password: Option<&str>| {
        let mut args = vec![
            "call",
            "--connect",
            server.addr(),
            "--pin",
            server.fingerprint(),
        ];
        if let Some(user) = user {
            args.extend(["--user", user]);
        }
        args.extend(["console", "echo", "hi"]);
        zs(&args, password)
    };
    let (ok, _, stderr) = call(None, None);
    assert!(!ok);
    assert!(stderr.contains("needs a logged-in user"), "{stderr}");
    let (ok, stdout, stderr) = call(Some("root"), Some("root password"));
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "hi");
    let (ok, _, stderr) = call(Some("root"), Some("not the password"));
    assert!(!ok);
    assert!(stderr.contains("wrong user name or password"), "{stderr}");
    drop(server);
    let _ = std::fs::remove_dir_all(accounts);
}

#[test]
fn zs_put_and_get_with_user_reach_the_users_area() {
    let work = fresh_dir("user-areas");
    let users = work.join("users");
    let users = users.to_str().unwrap();
    let (ok, _, stderr) = zs(
        &["user", "--dir", users, "add", "ann"],
        Some("ann's password"),
    );
    assert!(ok, "{stderr}");
    let served = work.join("served");
    std::fs::create_dir_all(&served).unwrap();
    let server = FileServer::start_with(|_| {
        vec![
            "--accounts".into(),
            users.into(),
            "--files".into(),
            served.clone().into(),
            "--user-areas".into(),
        ]
    });
    let local = work.join("note.txt");
    std::fs::write(&local, b"ann's note").unwrap();
    let local = local.to_str().unwrap();
    let transfer = |verb: &str, user: Option<&str>, a: &str, b: &str| {
        let mut args = vec![
            verb,
            "--connect",
            server.addr(),
            "--pin",
            server.fingerprint(),
        ];
        if let Some(user) = user {
            args.extend(["--user", user]);
        }
        args.extend([a, b]);
        zs(&args, Some("ann's password"))
    };
    let (ok, _, stderr) = transfer("put", None, local, "note.txt");
    assert!(!ok, "a private path needs a login");
    assert!(stderr.contains("need a login"), "{stderr}");
    let (ok, _, stderr) = transfer("put", Some("ann"), local, "note.txt");
    assert!(ok, "{stderr}");
    assert_eq!(
        std::fs::read(served.join("users/ann/note.txt")).unwrap(),
        b"ann's note"
    );
    let back = work.join("back.txt");
    let (ok, _, stderr) = transfer("get", Some("ann"), "note.txt", back.to_str().unwrap());
    assert!(ok, "{stderr}");
    assert_eq!(std::fs::read(&back).unwrap(), b"ann's note");
    drop(server);
    let _ = std::fs::remove_dir_all(work);
}
