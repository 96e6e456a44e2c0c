//! The example app as a process, the way the platform runs it: ports from environment.json,
//! every `PORT_<NAME>` served, a graceful exit on SIGTERM with open WebSockets told 1001.
//!
//! `cargo test` builds the examples next to the test binaries, so the app is run from there.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth::testing::{HttpClient, RawClient, WsClient};

/// The example app's binary: built by a full `cargo test` beside this test's own, or built
/// here when only this test was asked for and there is none yet. (`cargo test --test app`
/// alone does not rebuild examples: after changing the server, run a full `cargo test` or
/// `cargo build --example app` first, or this runs the old binary.)
fn app_binary() -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    let mut dir = std::env::current_exe().unwrap();
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir
        .join("examples")
        .join(format!("app{}", std::env::consts::EXE_SUFFIX));
    BUILD.call_once(|| {
        if !path.exists() {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build.args(["build", "--example", "app"]);
            if dir.ends_with("release") {
                build.arg("--release");
            }
            assert!(
                build.status().unwrap().success(),
                "building examples/app.rs failed"
            );
        }
    });
    path
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connect to `port` once the app listens there (bounded wait).
fn wait_for(port: u16, app: &mut Child) -> SocketAddr {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..500 {
        if RawClient::connect(addr).is_ok() {
            return addr;
        }
        if let Some(status) = app.try_wait().unwrap() {
            panic!("the app exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the app never listened on {addr}");
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serves_the_environment_json_ports_and_drains_on_sigterm() {
    let (www, control) = (free_port(), free_port());
    let env_file = std::env::temp_dir().join(format!("berth-app-test-{}.json", std::process::id()));
    std::fs::write(
        &env_file,
        format!(
            r#"{{"DOTCLOUD_PROJECT": "demoapp", "DOTCLOUD_SERVICE_NAME": "www",
                "PORT_WWW": "{www}", "PORT_CONTROL": "{control}",
                "DOTCLOUD_DB_MYSQL_HOST": "db.example.com", "DOTCLOUD_DB_MYSQL_PORT": "7780"}}"#
        ),
    )
    .unwrap();
    let child = Command::new(app_binary())
        .env("BERTH_ENVIRONMENT_FILE", &env_file)
        .env_remove("PORT")
        .env_remove("PORT_WWW")
        .env("BERTH_LOG", "warn")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut app = Running(child);
    let www_addr = wait_for(www, &mut app.0);
    let control_addr = wait_for(control, &mut app.0);
    let _ = std::fs::remove_file(&env_file);

    // Both ports serve the app.
    for addr in [www_addr, control_addr] {
        let mut http = HttpClient::connect(addr).unwrap();
        let health = http.get("/health").unwrap();
        assert_eq!((health.status, health.body.as_slice()), (200, &b"ok"[..]));
        let page = http.get("/").unwrap();
        assert_eq!(page.status, 200);
        assert!(String::from_utf8_lossy(&page.body).contains("/ws/chat"));
    }
    // A chat message sent on one port reaches a member on the other.
    let mut alice = WsClient::connect(www_addr, "/ws/chat", &[]).unwrap();
    let mut bob = WsClient::connect(control_addr, "/ws/chat", &[]).unwrap();
    // Subscriptions are made in on_open, before the 101 leaves the server.
    alice
        .send_text(r#"{"name":"alice","text":"hello bob"}"#)
        .unwrap();
    for member in [&mut alice, &mut bob] {
        match member.recv_message().unwrap() {
            berth::testing::Received::Text(t) => assert!(t.contains("hello bob"), "{t}"),
            other => panic!("expected the chat message, got {other:?}"),
        }
    }
    // A member who leaves is announced to the others, on both ports.
    let mut carol = WsClient::connect(control_addr, "/ws/chat", &[]).unwrap();
    carol.close(1000, "bye").unwrap();
    carol.expect_close(1000).unwrap();
    for member in [&mut alice, &mut bob] {
        match member.recv_message().unwrap() {
            berth::testing::Received::Text(t) => {
                assert!(t.contains("a member left (2 here)"), "{t}")
            }
            other => panic!("expected the departure, got {other:?}"),
        }
    }
    let mut http = HttpClient::connect(www_addr).unwrap();
    let stats = http.get("/stats").unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    assert!(stats["websockets"].as_u64().unwrap() >= 2, "{stats}");

    // SIGTERM: open WebSockets are closed with 1001 and the process exits cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &app.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    alice.expect_close(1001).unwrap();
    bob.expect_close(1001).unwrap();
    drop((alice, bob, http));
    for _ in 0..500 {
        if let Some(status) = app.0.try_wait().unwrap() {
            assert!(status.success(), "the app exited with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the app did not exit after SIGTERM");
}

#[test]
fn a_malformed_environment_json_is_a_clear_error() {
    let env_file = std::env::temp_dir().join(format!("berth-app-bad-{}.json", std::process::id()));
    std::fs::write(&env_file, r#"{"PORT_WWW": "not a port"}"#).unwrap();
    let output = Command::new(app_binary())
        .env("BERTH_ENVIRONMENT_FILE", &env_file)
        .env_remove("PORT")
        .env_remove("PORT_WWW")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&env_file);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PORT_WWW"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The CPU time (user + system, in clock ticks) the process `pid` has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_file_descriptors_the_app_waits_instead_of_spinning_and_recovers() {
    let port = free_port();
    // 64 descriptors: a few dozen connections exhaust them, and accept fails with EMFILE.
    let child = Command::new("sh")
        .args(["-c", "ulimit -n 64 && exec \"$0\""])
        .arg(app_binary())
        .env("PORT", port.to_string())
        .env("BERTH_ENVIRONMENT_FILE", "no-such-environment.json")
        .env("BERTH_LOG", "error")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut app = Running(child);
    let addr = wait_for(port, &mut app.0);
    let held: Vec<RawClient> = (0..120)
        .filter_map(|_| RawClient::connect(addr).ok())
        .collect();
    assert!(held.len() > 64, "only {} connections were made", held.len());
    std::thread::sleep(Duration::from_millis(300));
    // Connections wait in the backlog while the app has no descriptor for them. A loop that
    // retried accept at once would burn a core; the app backs off instead.
    let pid = app.0.id();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    assert!(
        used <= 50,
        "{used} ticks of CPU in 2 s with descriptors exhausted"
    );
    // Once descriptors are free again, new clients are served.
    drop(held);
    for _ in 0..250 {
        if let Ok(mut http) = HttpClient::connect(addr) {
            if let Ok(health) = http.get("/health") {
                assert_eq!(health.status, 200);
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the app did not serve again after descriptors were freed");
}
