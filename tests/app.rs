//! The example app as a process, the way the platform runs it: ports from environment.json,
//! every `PORT_<NAME>` served, a graceful exit on SIGTERM with open WebSockets told 1001.
//!
//! `cargo test` builds the examples next to the test binaries, so the app is run from there.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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

/// How long the app may take to start listening, or to exit.
const WAIT: Duration = Duration::from_secs(10);

/// Ports that were free a moment ago (distinct). Another process may take one before the app
/// binds it: [`launch`] sees the app report that and tries again with others.
fn free_ports(count: usize) -> Vec<u16> {
    // Held together until all are chosen, so that they differ.
    let held: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The example app as a child process, its stderr read line by line on a thread.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, for failure messages.
    log: Vec<String>,
}

impl Running {
    /// Start `command` (its `BERTH_LOG` set to `info`, so the app says where it listens).
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .env("BERTH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// The next line of stderr, `None` once the app has closed it (it exited), waiting at
    /// most until `deadline`.
    #[allow(clippy::disallowed_methods)] // A bounded wait for the child.
    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.log.push(line.clone());
                Some(line)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!(
                    "the app said nothing new for {WAIT:?}:\n{}",
                    self.log.join("\n")
                )
            }
        }
    }

    /// Wait for the app to say it listens on each of `ports`. `Err(true)` if a port was in
    /// use; `Err(false)` if the app exited for another reason.
    #[allow(clippy::disallowed_methods)] // A bounded wait for the child.
    fn wait_listening(&mut self, ports: &[u16]) -> Result<(), bool> {
        let deadline = Instant::now() + WAIT;
        let mut waiting: Vec<String> = ports
            .iter()
            .map(|p| format!("listening on http://0.0.0.0:{p}/"))
            .collect();
        while !waiting.is_empty() {
            let Some(line) = self.next_line(deadline) else {
                return Err(false);
            };
            if line.contains("cannot listen on") && line.contains("in use") {
                return Err(true);
            }
            waiting.retain(|w| !line.contains(w.as_str()));
        }
        Ok(())
    }

    /// Everything the app has said so far, for a failure message.
    fn log_now(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }

    /// Wait for the app to exit (its stderr closes), and return its status and stderr.
    #[allow(clippy::disallowed_methods)] // A bounded wait for the child.
    fn wait_exit(&mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + WAIT;
        while self.next_line(deadline).is_some() {}
        (self.child.wait().unwrap(), self.log.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the app listening on `count` fresh ports, with the command `command` makes for them;
/// if one was taken before the app could bind it, try again with others (a few times).
fn launch(count: usize, mut command: impl FnMut(&[u16]) -> Command) -> (Running, Vec<SocketAddr>) {
    for _ in 0..5 {
        let ports = free_ports(count);
        let mut app = Running::spawn(command(&ports));
        match app.wait_listening(&ports) {
            Ok(()) => {
                let addrs = ports.iter().map(|&p| ([127, 0, 0, 1], p).into()).collect();
                return (app, addrs);
            }
            Err(true) => continue,
            Err(false) => {
                let (status, log) = app.wait_exit();
                panic!("the app exited early ({status}):\n{log}");
            }
        }
    }
    panic!("five sets of free ports were all taken before the app bound them");
}

/// A tungstenite client on `addr` for `path`.
fn tungstenite_connect(addr: SocketAddr, path: &str) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (ws, response) = tungstenite::client(format!("ws://{addr}{path}"), stream).unwrap();
    assert_eq!(response.status(), 101);
    ws
}

/// The next text message tungstenite reads (pings answered on the way).
fn tungstenite_text(ws: &mut tungstenite::WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => return t.as_str().to_owned(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[test]
fn serves_the_environment_json_ports_and_drains_on_sigterm() {
    let env_file = std::env::temp_dir().join(format!("berth-app-test-{}.json", std::process::id()));
    let (mut app, addrs) = launch(2, |ports| {
        let (www, control) = (ports[0], ports[1]);
        std::fs::write(
            &env_file,
            format!(
                r#"{{"DOTCLOUD_PROJECT": "demoapp", "DOTCLOUD_SERVICE_NAME": "www",
                    "PORT_WWW": "{www}", "PORT_CONTROL": "{control}",
                    "DOTCLOUD_DB_MYSQL_HOST": "db.example.com", "DOTCLOUD_DB_MYSQL_PORT": "7780"}}"#
            ),
        )
        .unwrap();
        let mut command = Command::new(app_binary());
        command
            .env("BERTH_ENVIRONMENT_FILE", &env_file)
            .env_remove("PORT")
            .env_remove("PORT_WWW");
        command
    });
    let _ = std::fs::remove_file(&env_file);
    let (www_addr, control_addr) = (addrs[0], addrs[1]);

    // Both ports serve the app.
    for addr in [www_addr, control_addr] {
        let mut http = HttpClient::connect(addr).unwrap();
        let health = http.get("/health").unwrap();
        assert_eq!((health.status, health.body.as_slice()), (200, &b"ok"[..]));
        let page = http.get("/").unwrap();
        assert_eq!(page.status, 200);
        assert!(String::from_utf8_lossy(&page.body).contains("/ws/chat"));
    }
    // A chat message sent on one port reaches a member on the other. Alice is on berth's
    // testing kit; Bob on tungstenite, so berth's codec is not the only judge.
    let mut alice = WsClient::connect(www_addr, "/ws/chat", &[]).unwrap();
    let mut bob = tungstenite_connect(control_addr, "/ws/chat");
    // Subscriptions are made in on_open, before the 101 leaves the server.
    alice
        .send_text(r#"{"name":"alice","text":"hello bob"}"#)
        .unwrap();
    match alice.recv_message().unwrap() {
        berth::testing::Received::Text(t) => assert!(t.contains("hello bob"), "{t}"),
        other => panic!("expected the chat message, got {other:?}"),
    }
    let t = tungstenite_text(&mut bob);
    assert!(t.contains("hello bob"), "{t}");
    // A member who leaves is announced to the others, on both ports.
    let mut carol = WsClient::connect(control_addr, "/ws/chat", &[]).unwrap();
    carol.close(1000, "bye").unwrap();
    carol.expect_close(1000).unwrap();
    match alice.recv_message().unwrap() {
        berth::testing::Received::Text(t) => assert!(t.contains("a member left (2 here)"), "{t}"),
        other => panic!("expected the departure, got {other:?}"),
    }
    let t = tungstenite_text(&mut bob);
    assert!(t.contains("a member left (2 here)"), "{t}");
    let mut http = HttpClient::connect(www_addr).unwrap();
    let stats = http.get("/stats").unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    assert!(stats["websockets"].as_u64().unwrap() >= 2, "{stats}");

    // SIGTERM: open WebSockets are closed with 1001 and the process exits cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &app.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    alice.expect_close(1001).unwrap();
    loop {
        match bob.read() {
            Ok(tungstenite::Message::Close(frame)) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001));
                break;
            }
            Ok(_) => continue,
            Err(e) => panic!("no Close before the end: {e}"),
        }
    }
    drop((alice, bob, http));
    let (status, log) = app.wait_exit();
    assert!(status.success(), "the app exited with {status}:\n{log}");
}

#[test]
fn a_malformed_environment_json_is_a_clear_error() {
    // A bad port value, broken JSON, JSON that is not an object, a value that is not a
    // string: each stops the app with status 1 and a message naming the file (and the
    // variable, where one is to blame), before it listens anywhere, and without a panic.
    let cases: [(&str, Option<&str>); 5] = [
        (r#"{"PORT_WWW": "not a port"}"#, Some("PORT_WWW")),
        (r#"{"PORT_WWW": "8080""#, None),
        (r#"{"PORT_WWW": "8080",}"#, None),
        (r#"["PORT_WWW", "8080"]"#, None),
        (r#"{"PORT_WWW": 8080}"#, Some("PORT_WWW")),
    ];
    for (i, (text, names)) in cases.into_iter().enumerate() {
        let env_file =
            std::env::temp_dir().join(format!("berth-app-bad-{}-{i}.json", std::process::id()));
        std::fs::write(&env_file, text).unwrap();
        let mut command = Command::new(app_binary());
        command
            .env("BERTH_ENVIRONMENT_FILE", &env_file)
            .env_remove("PORT")
            .env_remove("PORT_WWW");
        let (status, stderr) = Running::spawn(command).wait_exit();
        let _ = std::fs::remove_file(&env_file);
        assert_eq!(status.code(), Some(1), "for {text}: {stderr}");
        let error = stderr
            .lines()
            .find(|l| l.starts_with("ERROR"))
            .unwrap_or_else(|| panic!("for {text}, no error line: {stderr}"));
        assert!(
            error.contains(&env_file.display().to_string()),
            "for {text}, the error does not name the file: {stderr}"
        );
        if let Some(name) = names {
            assert!(error.contains(name), "for {text}: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "for {text}: {stderr}");
        assert!(!stderr.contains("listening on"), "for {text}: {stderr}");
    }
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
    // 64 descriptors: a few dozen connections exhaust them, and accept fails with EMFILE.
    let (mut app, addrs) = launch(1, |ports| {
        let mut command = Command::new("sh");
        command
            .args(["-c", "ulimit -n 64 && exec \"$0\""])
            .arg(app_binary())
            .env("PORT", ports[0].to_string())
            .env("BERTH_ENVIRONMENT_FILE", "no-such-environment.json");
        command
    });
    let addr = addrs[0];
    let held: Vec<RawClient> = (0..120)
        .filter_map(|_| RawClient::connect(addr).ok())
        .collect();
    assert!(held.len() > 64, "only {} connections were made", held.len());
    std::thread::sleep(Duration::from_millis(300));
    // Connections wait in the backlog while the app has no descriptor for them. A loop that
    // retried accept at once would burn a core; the app backs off instead.
    let pid = app.child.id();
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
    panic!(
        "the app did not serve again after descriptors were freed:\n{}",
        app.log_now()
    );
}
