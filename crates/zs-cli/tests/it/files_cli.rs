//! `zs put` and `zs get` against `zs serve --files DIR` in a child process.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use zs_wire::crypto::hash::{HashAlgorithm, hex};

static NEXT_DIR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub(crate) fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "zs-files-cli-{}-{name}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `zs serve --files <dir>/shared` with its key in `<dir>` (or other options, see
/// [`Self::start_with`]); everything removed on drop.
pub(crate) struct FileServer {
    child: Child,
    addr: String,
    fingerprint: String,
    dir: PathBuf,
}

impl FileServer {
    fn start() -> Self {
        Self::start_with(|dir| {
            let shared = dir.join("shared");
            std::fs::create_dir_all(&shared).unwrap();
            vec!["--files".into(), shared.into()]
        })
    }

    /// `zs serve` with the options `options(dir)` gives.
    pub(crate) fn start_with(options: impl FnOnce(&Path) -> Vec<std::ffi::OsString>) -> Self {
        let dir = fresh_dir("serve");
        let mut child = Command::new(env!("CARGO_BIN_EXE_zs"))
            .args(["serve", "--listen", "127.0.0.1:0", "--key"])
            .arg(dir.join("server.key"))
            .args(options(&dir))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("zs serve starts");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("zs: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        line.clear();
        reader.read_line(&mut line).unwrap();
        let fingerprint = line
            .trim()
            .strip_prefix("zs: fingerprint ")
            .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
            .to_owned();
        Self {
            child,
            addr,
            fingerprint,
            dir,
        }
    }

    fn shared(&self) -> PathBuf {
        self.dir.join("shared")
    }

    /// The server's address.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// The server's key fingerprint.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The directory of the server's files.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `zs <verb> --connect <addr> --pin <fp> <args>`: (success, stdout, stderr).
    pub(crate) fn run(&self, verb: &str, args: &[&Path]) -> (bool, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_zs"))
            .args([verb, "--connect", &self.addr, "--pin", &self.fingerprint])
            .args(args)
            .output()
            .expect("zs runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_owned(),
            String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_owned(),
        )
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Checks `<verb>: <size> bytes, sha3-256 <hex>, <rate> MB/s`.
fn check_summary(line: &str, verb: &str, size: usize, sha3: &str) {
    let prefix = format!("{verb}: {size} bytes, sha3-256 {sha3}, ");
    let rate = line
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(" MB/s"))
        .unwrap_or_else(|| panic!("unexpected summary {line:?}"));
    let rate: f64 = rate.parse().unwrap();
    assert!(rate >= 0.0, "{line}");
}

#[test]
fn put_and_get_move_a_file_through_zs_serve_files() {
    let server = FileServer::start();
    let local = fresh_dir("local");
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 7)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sha3 = hex(&HashAlgorithm::Sha3_256.digest(&data));
    let source = local.join("source.bin");
    std::fs::write(&source, &data).unwrap();

    let (ok, stdout, stderr) = server.run("put", &[&source, Path::new("in/copy.bin")]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    check_summary(&stdout, "put", data.len(), &sha3);
    assert_eq!(
        std::fs::read(server.shared().join("in/copy.bin")).unwrap(),
        data
    );

    let target = local.join("back.bin");
    let (ok, stdout, stderr) = server.run("get", &[Path::new("in/copy.bin"), &target]);
    assert!(ok, "{stderr}");
    check_summary(&stdout, "get", data.len(), &sha3);
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert!(!local.join("back.bin.part").exists());

    // --resume with nothing to resume transfers the whole file; a directory receives it
    // under its remote name, a remote path ending in / under the local name.
    let into = local.join("into");
    std::fs::create_dir_all(&into).unwrap();
    let resume = Path::new("--resume");
    let (ok, stdout, stderr) = server.run("get", &[resume, Path::new("in/copy.bin"), &into]);
    assert!(ok, "{stderr}");
    check_summary(&stdout, "get", data.len(), &sha3);
    assert_eq!(std::fs::read(into.join("copy.bin")).unwrap(), data);
    let (ok, _, stderr) = server.run("put", &[resume, &source, Path::new("dir/")]);
    assert!(ok, "{stderr}");
    assert_eq!(
        std::fs::read(server.shared().join("dir/source.bin")).unwrap(),
        data
    );

    // Failures: one line on stderr, nothing on stdout, non-zero exit.
    for (verb, args) in [
        ("get", [Path::new("no/such.bin"), &target]),
        ("put", [&source, Path::new("../escape.bin")]),
        ("put", [&local.join("missing.bin"), Path::new("x.bin")]),
    ] {
        let (ok, stdout, stderr) = server.run(verb, &args);
        assert!(!ok && stdout.is_empty(), "{verb} {args:?}: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
    let (_, _, stderr) = server.run("get", &[Path::new("no/such.bin"), &target]);
    assert!(stderr.contains("not found"), "{stderr}");
    assert!(!local.join("back.bin.part").exists());
    let (_, _, stderr) = server.run("put", &[&source, Path::new("../escape.bin")]);
    assert!(stderr.contains("\"..\""), "{stderr}");
    assert!(!server.dir.join("escape.bin").exists());
    let _ = std::fs::remove_dir_all(&local);
}
