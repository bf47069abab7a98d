//! The dashboard in a real browser: `zs serve --admin` in a child process, calls made to it,
//! the page opened in headless Chromium (Debian's `chromium` and `chromium-driver`, driven
//! over WebDriver), its live numbers read, and a peer closed from its button. A screenshot
//! is left in `target/tmp/dashboard.png`.
//!
//! Skips (passes) without `chromedriver` on the PATH, unless `ZS_REQUIRE_BROWSER=1` (CI).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_chromedriver() -> Option<String> {
    let found = Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if found {
        return Some("chromedriver".to_owned());
    }
    assert!(
        std::env::var_os("ZS_REQUIRE_BROWSER").is_none(),
        "ZS_REQUIRE_BROWSER is set but chromedriver is missing (apt-get install chromium chromium-driver)"
    );
    eprintln!("skipped: no chromedriver (apt-get install chromium chromium-driver)");
    None
}

/// `zs serve --admin` on free ports: the server's and the dashboard's addresses.
fn serve(dir: &std::path::Path) -> (Killed, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--key")
        .arg(dir.join("server.key"))
        .env("ZS_ADMIN_TOKEN", "dash-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("zs serve starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let child = Killed(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut server = None;
    let mut admin = None;
    for line in lines.by_ref() {
        let line = line.expect("zs serve prints");
        if let Some(address) = line.strip_prefix("zs: listening on ") {
            server = Some(address.to_owned());
        }
        if let Some(rest) = line.strip_prefix("zs: dashboard http://") {
            admin = rest.split('/').next().map(str::to_owned);
            break;
        }
    }
    // Keep reading so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (
        child,
        server.expect("zs serve printed its address"),
        admin.expect("zs serve printed the dashboard's address"),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Polls `read` until it returns what `want` accepts, for up to ten seconds.
async fn until<T: std::fmt::Debug, F: Future<Output = T>>(
    what: &str,
    mut read: impl FnMut() -> F,
    want: impl Fn(&T) -> bool,
) -> T {
    let mut last = None;
    for _ in 0..100 {
        let value = read().await;
        if want(&value) {
            return value;
        }
        last = Some(value);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: never as wanted; last {last:?}");
}

/// chromedriver on a free port and a headless Chromium session through it.
async fn browser(chromedriver: String) -> (Killed, fantoccini::Client) {
    let port = free_port();
    let driver = Killed(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1100"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let webdriver = format!("http://127.0.0.1:{port}");
    let session = until(
        "a WebDriver session",
        || {
            let mut builder = ClientBuilder::new(connector.clone());
            builder.capabilities(capabilities.clone());
            let webdriver = webdriver.clone();
            async move {
                builder
                    .connect(&webdriver)
                    .await
                    .map_err(|error| error.to_string())
            }
        },
        Result::is_ok,
    )
    .await
    .unwrap();
    (driver, session)
}

/// The text of the first element `selector` matches, or "" while there is none.
async fn text(browser: &fantoccini::Client, selector: &str) -> String {
    match browser.find(Locator::Css(selector)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn click(browser: &fantoccini::Client, selector: &str) {
    browser
        .find(Locator::Css(selector))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

fn save_screenshot(name: &str, shot: &[u8]) {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, shot).unwrap();
    assert!(shot.starts_with(b"\x89PNG"), "a PNG screenshot");
    eprintln!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_numbers_and_closes_a_peer() {
    let Some(chromedriver) = find_chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_serve, server, admin) = serve(dir.path());
    let (_driver, browser) = browser(chromedriver).await;

    let client = zs::Client::connect(server.as_str()).await.unwrap();
    for i in 0..7 {
        let reply = client.call_console("echo", &format!("{i}")).await.unwrap();
        assert_eq!(reply, format!("{i}"));
    }

    // The token rides in the fragment, which the browser never sends to the server.
    browser
        .goto(&format!("http://{admin}/#token=dash-token"))
        .await
        .unwrap();
    let text = |selector: &'static str| text(&browser, selector);
    until("the status", || text("#status"), |status| status == "live").await;
    until("calls", || text("#calls-total"), |calls| calls == "7").await;
    until(
        "open connections",
        || text("#connections-open"),
        |open| open == "1",
    )
    .await;
    let echo_row = until(
        "the echo command's row",
        || text("#commands-table tbody"),
        |rows| rows.contains("echo"),
    )
    .await;
    assert!(echo_row.contains('7'), "{echo_row}");

    // The numbers follow new calls without a reload.
    for _ in 0..3 {
        client.call_console("echo", "more").await.unwrap();
    }
    until(
        "calls after three more",
        || text("#calls-total"),
        |calls| calls == "10",
    )
    .await;
    until(
        "the calls chart",
        || text("#chart-calls-now"),
        |now| !now.is_empty(),
    )
    .await;

    save_screenshot("dashboard.png", &browser.screenshot().await.unwrap());

    // Close the peer from its button: the client sees the operator's close.
    click(&browser, "#peers-table button.close-peer").await;
    let reason = tokio::time::timeout(Duration::from_secs(10), client.peer().closed())
        .await
        .expect("the peer is closed");
    assert!(reason.to_string().contains("operator"), "{reason}");
    until(
        "the peers table",
        || text("#peers-table tbody"),
        |rows| rows.contains("none"),
    )
    .await;
    until(
        "open connections",
        || text("#connections-open"),
        |open| open == "0",
    )
    .await;
    browser.close().await.unwrap();
}

/// `zs nat server --admin` with one mapping: the agents connect to the first address, users
/// to the second; the dashboard's address third.
fn nat_server(dir: &std::path::Path) -> (Killed, String, String, String, String) {
    let config = dir.join("server.toml");
    let (agents, public) = (free_port(), free_port());
    std::fs::write(
        &config,
        format!(
            "[nat.server]\nlisten = \"127.0.0.1:{agents}\"\n\
             [nat.server.mappings.web]\npublic = \"127.0.0.1:{public}\"\ntoken = \"change-me\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args(["nat", "server", "--config"])
        .arg(&config)
        .arg("--key")
        .arg(dir.join("server.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("zs nat server starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let child = Killed(child);
    let mut lines = BufReader::new(stdout).lines();
    let (mut admin, mut fingerprint) = (None, None);
    for line in lines.by_ref() {
        let line = line.expect("zs nat server prints");
        if let Some(rest) = line.strip_prefix("zs: dashboard http://") {
            admin = rest.split('/').next().map(str::to_owned);
        }
        if let Some(pin) = line.strip_prefix("zs nat: fingerprint ") {
            fingerprint = Some(pin.to_owned());
        }
        if admin.is_some() && fingerprint.is_some() {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    (
        child,
        format!("127.0.0.1:{agents}"),
        format!("127.0.0.1:{public}"),
        admin.expect("the dashboard's address"),
        fingerprint.expect("the fingerprint"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_dashboard_shows_mappings_and_disables_one() {
    let Some(chromedriver) = find_chromedriver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_server, agents, public, admin, pin) = nat_server(dir.path());
    let service = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = service.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = service.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = socket.write_all(b"hello\n").await;
        }
    });
    let mut config = zs_nat::AgentConfig::new(agents);
    config.name = "office".into();
    config.pin = Some(pin);
    config.mappings.insert(
        "web".into(),
        zs_nat::AgentMapping::local(local.to_string(), "change-me"),
    );
    let agent = zs_nat::NatAgent::new(config).start().await.unwrap();
    agent.wait_settled().await;
    let read_public = || async {
        use tokio::io::AsyncReadExt;
        let mut socket = tokio::net::TcpStream::connect(public.as_str())
            .await
            .unwrap();
        let mut greeting = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut greeting)).await;
        greeting
    };
    assert_eq!(read_public().await, b"hello\n");

    let (_driver, browser) = browser(chromedriver).await;
    browser.goto(&format!("http://{admin}/")).await.unwrap();
    let text = |selector: &'static str| text(&browser, selector);
    until("the status", || text("#status"), |status| status == "live").await;
    until(
        "the mapping",
        || text("#mappings-table tbody"),
        |rows| rows.contains("web"),
    )
    .await;
    until(
        "the agent",
        || text("#agents-table tbody"),
        |rows| rows.contains("office"),
    )
    .await;
    save_screenshot("dashboard-nat.png", &browser.screenshot().await.unwrap());

    // The mapping's button says what a click does next.
    let toggle = "button.toggle-mapping[data-mapping='web']";
    click(&browser, toggle).await;
    until(
        "the mapping's button",
        || text(toggle),
        |label| label == "Enable",
    )
    .await;
    assert_eq!(
        read_public().await,
        b"",
        "a disabled mapping closes at once"
    );
    click(&browser, toggle).await;
    until(
        "the mapping's button",
        || text(toggle),
        |label| label == "Disable",
    )
    .await;
    assert_eq!(read_public().await, b"hello\n");
    browser.close().await.unwrap();
    agent.shutdown().await.unwrap();
}
