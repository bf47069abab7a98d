//! The admin listener over real loopback sockets: metrics that parse and move, the token
//! check, bad requests, and the operator's actions on a zs server and an XNat server.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zs_admin::{Admin, AdminConfig, AdminError, NatAgentPart, NatServerPart, ServerPart};

/// Ends a test that hangs.
async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), body)
        .await
        .expect("test timed out")
}

/// A response as read off the socket.
struct Response {
    status: u16,
    headers: String,
    body: String,
}

/// Sends `raw` (a whole HTTP/1.1 request) and reads the response to the end: a raw socket,
/// so tests can send what no well-behaved client would.
async fn send(address: SocketAddr, raw: &[u8]) -> Response {
    let mut socket = TcpStream::connect(address).await.unwrap();
    socket.write_all(raw).await.unwrap();
    let mut bytes = Vec::new();
    let _ = socket.read_to_end(&mut bytes).await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

async fn request(address: SocketAddr, method: &str, path: &str, token: Option<&str>) -> Response {
    let auth = token.map_or(String::new(), |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    send(address, raw.as_bytes()).await
}

/// `name{labels}` → value, from a scrape parsed by a Prometheus text-format parser.
fn parse(text: &str) -> HashMap<String, f64> {
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the metrics parse");
    let mut values = HashMap::new();
    for sample in scrape.samples {
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        labels.sort();
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.last().map_or(0.0, |bucket| bucket.count)
            }
            prometheus_parse::Value::Summary(_) => continue,
        };
        values.insert(format!("{}{{{}}}", sample.metric, labels.join(",")), value);
    }
    values
}

async fn echo_server() -> zs::ServerHandle {
    let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        .register_console("fail", |_ctx, _text: String| async move {
            Err::<String, _>(zs::Status::not_found("nothing"))
        });
    server.spawn()
}

async fn admin_for(server: &zs::ServerHandle, token: Option<&str>) -> zs_admin::AdminHandle {
    let config = AdminConfig {
        listen: Some("127.0.0.1:0".into()),
        token: token.map(str::to_owned),
    };
    Admin::new(config)
        .describe("zs", server.local_addr().to_string())
        .part(ServerPart::new(server.server_ref()))
        .start()
        .await
        .unwrap()
}

async fn scrape(admin: SocketAddr, token: Option<&str>) -> HashMap<String, f64> {
    let response = request(admin, "GET", "/metrics", token).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        response
            .headers
            .contains("content-type: text/plain; version=0.0.4")
    );
    parse(&response.body)
}

#[tokio::test]
async fn metrics_parse_and_counters_move_with_calls() {
    bounded(async {
        let server = echo_server().await;
        let admin = admin_for(&server, None).await;
        let client = zs::Client::connect(server.local_addr()).await.unwrap();
        for i in 0..10 {
            let reply: String = client
                .call_console("echo", &format!("hi {i}"))
                .await
                .unwrap();
            assert_eq!(reply, format!("hi {i}"));
        }
        assert!(client.call_console("fail", "x").await.is_err());

        let first = scrape(admin.local_addr(), None).await;
        assert_eq!(first["zs_command_calls_total{command=echo}"], 10.0);
        assert_eq!(first["zs_command_calls_total{command=fail}"], 1.0);
        assert_eq!(
            first["zs_command_errors_total{code=not_found,command=fail}"],
            1.0
        );
        assert_eq!(first["zs_command_duration_seconds{command=echo}"], 10.0);
        assert_eq!(first["zs_connections_open{}"], 1.0);
        assert_eq!(first["zs_connections_accepted_total{}"], 1.0);
        assert_eq!(first["zs_handshakes_total{}"], 1.0);
        assert!(first["zs_received_bytes_total{}"] > 0.0);
        assert!(first["zs_sent_bytes_total{}"] > 0.0);
        assert_eq!(first["zs_connections_refused_total{reason=full}"], 0.0);

        for _ in 0..5 {
            let _: String = client.call_console("echo", "again").await.unwrap();
        }
        let second = scrape(admin.local_addr(), None).await;
        assert_eq!(second["zs_command_calls_total{command=echo}"], 15.0);
        assert!(second["zs_received_bytes_total{}"] > first["zs_received_bytes_total{}"]);

        // A connection that ends keeps its bytes in the totals (counters never go down).
        let before = second["zs_sent_bytes_total{}"];
        drop(client);
        for _ in 0..200 {
            if server.connection_count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let third = scrape(admin.local_addr(), None).await;
        assert_eq!(third["zs_connections_open{}"], 0.0);
        assert!(third["zs_sent_bytes_total{}"] >= before);
    })
    .await;
}

#[tokio::test]
async fn metrics_off_counts_no_calls() {
    bounded(async {
        let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
        server.config_mut().metrics(false);
        server.register_console("echo", |_ctx, text: String| async move { Ok(text) });
        let server = server.spawn();
        let admin = admin_for(&server, None).await;
        let client = zs::Client::connect(server.local_addr()).await.unwrap();
        let _: String = client.call_console("echo", "x").await.unwrap();
        let metrics = scrape(admin.local_addr(), None).await;
        assert_eq!(metrics["zs_command_calls_total{command=echo}"], 0.0);
        assert_eq!(metrics["zs_connections_open{}"], 1.0);
    })
    .await;
}

#[tokio::test]
async fn the_token_guards_everything_but_the_page() {
    bounded(async {
        let server = echo_server().await;
        let admin = admin_for(&server, Some("s3cret")).await;
        let address = admin.local_addr();
        for path in ["/metrics", "/api/state", "/api/history"] {
            let none = request(address, "GET", path, None).await;
            assert_eq!(none.status, 401, "{path} without a token");
            assert!(none.headers.contains("www-authenticate: bearer"));
            let wrong = request(address, "GET", path, Some("s3cres")).await;
            assert_eq!(wrong.status, 401, "{path} with a wrong token");
            assert!(wrong.body.contains("wrong admin token"));
            let right = request(address, "GET", path, Some("s3cret")).await;
            assert_eq!(right.status, 200, "{path} with the token");
        }
        let refused = request(address, "POST", "/api/peers/1/close", Some("nope")).await;
        assert_eq!(refused.status, 401);
        let page = request(address, "GET", "/", None).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("zserver admin"));
        assert!(
            !page.body.contains("https://"),
            "the page loads nothing from the internet"
        );
    })
    .await;
}

#[tokio::test]
async fn bad_requests_get_their_status_and_leave_the_data_plane_alone() {
    bounded(async {
        let server = echo_server().await;
        let admin = admin_for(&server, Some("t")).await;
        let address = admin.local_addr();
        let client = zs::Client::connect(server.local_addr()).await.unwrap();

        assert_eq!(request(address, "GET", "/nope", Some("t")).await.status, 404);
        assert_eq!(request(address, "GET", "/api/nope", Some("t")).await.status, 404);
        assert_eq!(request(address, "DELETE", "/metrics", Some("t")).await.status, 405);
        assert_eq!(request(address, "POST", "/api/peers/abc/close", Some("t")).await.status, 400);
        assert_eq!(request(address, "POST", "/api/peers/999999/close", Some("t")).await.status, 404);
        assert_eq!(request(address, "POST", "/api/nat/agents/1/kick", Some("t")).await.status, 404);

        // Huge headers: refused by hyper's limits, not read into memory without end.
        let huge = format!(
            "GET /metrics HTTP/1.1\r\nHost: admin\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(1024 * 1024)
        );
        let response = send(address, huge.as_bytes()).await;
        assert!(
            response.status == 431 || response.status == 400 || response.status == 0,
            "huge headers: {}",
            response.status
        );
        let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
        let many = format!("GET /metrics HTTP/1.1\r\nHost: admin\r\n{many}Connection: close\r\n\r\n");
        let response = send(address, many.as_bytes()).await;
        assert!(response.status == 431 || response.status == 400, "many headers: {}", response.status);
        // Garbage and a body over the limit.
        assert_eq!(send(address, b"\x16\x03\x01garbage\r\n\r\n").await.status, 400);
        let body = "x".repeat(100_000);
        let big_body = format!(
            "POST /api/peers/1/close HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let status = send(address, big_body.as_bytes()).await.status;
        assert!(status == 413 || status == 404, "big body: {status}");

        // The zs connection never noticed.
        let reply: String = client.call_console("echo", "still here").await.unwrap();
        assert_eq!(reply, "still here");
        assert_eq!(request(address, "GET", "/metrics", Some("t")).await.status, 200);
    })
    .await;
}

#[tokio::test]
async fn closing_a_peer_from_the_api() {
    bounded(async {
        let server = echo_server().await;
        let admin = admin_for(&server, None).await;
        let client = zs::Client::connect(server.local_addr()).await.unwrap();
        let _: String = client.call_console("echo", "x").await.unwrap();

        let state = request(admin.local_addr(), "GET", "/api/state", None).await;
        let state: serde_json::Value = serde_json::from_str(&state.body).unwrap();
        let peers = state["peers"].as_array().unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(state["overview"]["calls"], 1);
        assert_eq!(state["server"]["kind"], "zs");
        assert_eq!(peers[0]["calls"], 1);
        let id = peers[0]["id"].as_u64().unwrap();

        let closed = request(
            admin.local_addr(),
            "POST",
            &format!("/api/peers/{id}/close"),
            None,
        )
        .await;
        assert_eq!(closed.status, 204);
        let reason = client.peer().closed().await;
        assert!(reason.to_string().contains("operator"), "{reason}");
        let again = request(
            admin.local_addr(),
            "POST",
            &format!("/api/peers/{id}/close"),
            None,
        )
        .await;
        assert_eq!(again.status, 404);
    })
    .await;
}

#[tokio::test]
async fn off_loopback_without_a_token_refuses_to_start() {
    let error = Admin::new(AdminConfig::on("0.0.0.0:0"))
        .start()
        .await
        .unwrap_err();
    assert!(matches!(error, AdminError::TokenRequired(_)), "{error}");
    let config = AdminConfig {
        listen: Some("127.0.0.1:0".into()),
        token: Some(String::new()),
    };
    let error = Admin::new(config).start().await.unwrap_err();
    assert!(matches!(error, AdminError::EmptyToken), "{error}");
}

#[tokio::test]
async fn nat_mappings_switch_and_agents_get_kicked() {
    bounded(async {
        let local = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let local_addr = local.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = local.accept().await {
                tokio::spawn(async move {
                    let _ = socket.write_all(b"hello\n").await;
                });
            }
        });
        let mut config = zs_nat::ServerConfig {
            listen: "127.0.0.1:0".into(),
            shutdown_grace_secs: 1,
            stats_interval_secs: 0,
            ..zs_nat::ServerConfig::default()
        };
        config.mappings.insert(
            "web".into(),
            zs_nat::ServerMapping::new("127.0.0.1:0", "tok"),
        );
        let nat = Arc::new(zs_nat::NatServer::new(config).start().await.unwrap());
        let admin = Admin::new(AdminConfig::on("127.0.0.1:0"))
            .describe("nat-server", "x")
            .part(NatServerPart::new(nat.clone()))
            .start()
            .await
            .unwrap();
        let mut agent_config = zs_nat::AgentConfig::new(nat.local_addr().unwrap().to_string());
        agent_config.reconnect_min_ms = 50;
        agent_config.reconnect_max_ms = 200;
        agent_config.shutdown_grace_secs = 1;
        agent_config.pin = Some(nat.fingerprint().to_string());
        agent_config.mappings.insert(
            "web".into(),
            zs_nat::AgentMapping::local(local_addr.to_string(), "tok"),
        );
        let agent = zs_nat::NatAgent::new(agent_config).start().await.unwrap();
        agent.wait_settled().await;
        let agent_admin = Admin::new(AdminConfig::on("127.0.0.1:0"))
            .describe("nat-agent", "x")
            .part(NatAgentPart::new(agent.subscribe()))
            .start()
            .await
            .unwrap();
        let agent_metrics = scrape(agent_admin.local_addr(), None).await;
        assert_eq!(agent_metrics["zs_nat_agent_connected{}"], 1.0);
        assert_eq!(
            agent_metrics["zs_nat_agent_mapping_registered{mapping=web}"],
            1.0
        );

        let public = nat.public_addr("web").unwrap();
        let mut user = TcpStream::connect(public).await.unwrap();
        let mut greeting = [0; 6];
        user.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting, b"hello\n");
        let metrics = scrape(admin.local_addr(), None).await;
        assert_eq!(metrics["zs_nat_mapping_enabled{mapping=web}"], 1.0);
        assert_eq!(metrics["zs_nat_connections_total{mapping=web}"], 1.0);
        assert_eq!(metrics["zs_nat_agents{}"], 1.0);

        let off = request(
            admin.local_addr(),
            "POST",
            "/api/nat/mappings/web/disable",
            None,
        )
        .await;
        assert_eq!(off.status, 204);
        let mut refused = TcpStream::connect(public).await.unwrap();
        let mut byte = [0; 1];
        assert_eq!(
            refused.read(&mut byte).await.unwrap_or(0),
            0,
            "a disabled mapping closes"
        );
        let metrics = scrape(admin.local_addr(), None).await;
        assert_eq!(metrics["zs_nat_mapping_enabled{mapping=web}"], 0.0);
        assert_eq!(metrics["zs_nat_refused_total{mapping=web}"], 1.0);
        let on = request(
            admin.local_addr(),
            "POST",
            "/api/nat/mappings/web/enable",
            None,
        )
        .await;
        assert_eq!(on.status, 204);
        let unknown = request(
            admin.local_addr(),
            "POST",
            "/api/nat/mappings/nope/enable",
            None,
        )
        .await;
        assert_eq!(unknown.status, 404);

        let state = request(admin.local_addr(), "GET", "/api/state", None).await;
        let state: serde_json::Value = serde_json::from_str(&state.body).unwrap();
        let id = state["nat"]["agents"][0]["id"].as_u64().unwrap();
        let kicked = request(
            admin.local_addr(),
            "POST",
            &format!("/api/nat/agents/{id}/kick"),
            None,
        )
        .await;
        assert_eq!(kicked.status, 204);
        // The agent comes back on a new link, with a new id.
        for _ in 0..300 {
            let agents = nat.stats().agents;
            if agents.len() == 1 && agents[0].id != id {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let agents = nat.stats().agents;
        assert_eq!(agents.len(), 1);
        assert_ne!(agents[0].id, id, "the kicked link was replaced");
        agent.shutdown().await.unwrap();
        nat.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn accounts_zdb_and_registry_metrics_move() {
    bounded(async {
        let accounts_dir = tempfile::tempdir().unwrap();
        let store = Arc::new(zs_db::Store::open(accounts_dir.path()).unwrap());
        let accounts = zs_accounts::Accounts::open(store).unwrap();
        accounts.add("alice", "right password", &[]).unwrap();
        let service = zs_accounts::AccountService::<()>::new(
            accounts,
            zs_accounts::AccountsConfig::default(),
        );
        let db_dir = tempfile::tempdir().unwrap();
        let db = zs_db::service::DbService::new(zs_db::Store::open(db_dir.path()).unwrap());
        let people = db.store().create("people").unwrap();
        for i in 0..100 {
            people
                .insert(zs_db::Record::Json(serde_json::json!({ "n": i })))
                .unwrap();
        }
        let backend = zs_cluster::Embedded::in_memory();
        let dispatch = zs_cluster::DispatchService::new(backend.clone());

        let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
        server.install(service.clone());
        let server = server.spawn();
        let admin = Admin::new(AdminConfig::on("127.0.0.1:0"))
            .part(zs_admin::AccountsPart::new(service))
            .part(zs_admin::DbPart::new(db.clone()))
            .part(zs_admin::ClusterPart::new(dispatch))
            .start()
            .await
            .unwrap();

        let client = zs::Client::connect(server.local_addr()).await.unwrap();
        let accounts = zs_accounts::AccountClient::new(client.peer());
        assert!(accounts.login("alice", "wrong").await.is_err());
        accounts.login("alice", "right password").await.unwrap();
        let query = zs_db::Query::filter("n >= 90");
        let found = db.store().query("people", query).unwrap().count();
        assert!(found > 0);
        use zs_cluster::Backend as _;
        backend
            .put(
                zs_cluster::Registration::new("chat", "c1", ["127.0.0.1:1".parse().unwrap()], 10),
                Duration::from_secs(60),
            )
            .await
            .unwrap();

        let metrics = scrape(admin.local_addr(), None).await;
        assert_eq!(metrics["zs_accounts_logins_total{}"], 1.0);
        assert_eq!(metrics["zs_accounts_login_failures_total{}"], 1.0);
        assert_eq!(metrics["zs_accounts_users_online{}"], 1.0);
        assert_eq!(metrics["zs_db_queries_total{}"], 1.0);
        assert_eq!(metrics["zs_db_records_scanned_total{}"], 100.0);
        assert_eq!(metrics["zs_cluster_servers{type=chat}"], 1.0);
        let state = request(admin.local_addr(), "GET", "/api/state", None).await;
        let state: serde_json::Value = serde_json::from_str(&state.body).unwrap();
        assert_eq!(state["cluster"]["members"][0]["id"], "c1");
    })
    .await;
}

#[tokio::test]
async fn transfers_are_counted_by_kind() {
    bounded(async {
        let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
        server
            .register_big_stream("sink", |_ctx, mut stream: zs::BigStream| async move {
                while stream.next_chunk().await?.is_some() {}
                Ok(zs::DataFrame::new().with(stream.completed()))
            })
            .register_complete_buffer("buffer", |_ctx, data: bytes::Bytes| async move {
                Ok(zs::DataFrame::new().with(data.len() as u64))
            });
        let server = server.spawn();
        let admin = admin_for(&server, None).await;
        let client = zs::Client::connect(server.local_addr()).await.unwrap();
        let big = vec![7u8; 3 << 20];
        client
            .peer()
            .send_big_stream("sink", std::io::Cursor::new(big), Some(3 << 20))
            .await
            .unwrap();
        // Incompressible, so the bytes on the wire are the buffer's.
        let buffer: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        client
            .peer()
            .send_complete_buffer("buffer", bytes::Bytes::from(buffer))
            .await
            .unwrap();
        let metrics = scrape(admin.local_addr(), None).await;
        assert_eq!(metrics["zs_transfers_total{kind=bigstream}"], 1.0);
        assert_eq!(
            metrics["zs_transfer_bytes_total{kind=bigstream}"],
            f64::from(3u32 << 20)
        );
        assert_eq!(metrics["zs_transfers_total{kind=complete_buffer}"], 1.0);
        assert!(metrics["zs_transfer_bytes_total{kind=complete_buffer}"] > 0.0);
        assert_eq!(metrics["zs_transfers_active{kind=bigstream}"], 0.0);
        assert_eq!(metrics["zs_transfers_active{kind=complete_buffer}"], 0.0);
    })
    .await;
}
