//! The `agentrelay` CLI against a real HQ and runner: attached through a real PTY (typing, echo,
//! resize, detach, re-attach, exit codes), resumed across a cut connection, and every other
//! subcommand with its errors.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::Duration;

use agentrelay_e2e::{ADMIN_TOKEN, TIMEOUT, TcpProxy, TestHq, TestRunner, binary, eventually};
use agentrelay_protocol::{SessionStatus, TokenInfo};
use nix::sys::termios::{LocalFlags, tcgetattr};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// The CLI running in a PTY of its own, as in a person's terminal.
struct CliTerminal {
    pty: pty_process::Pty,
    child: tokio::process::Child,
    output: Vec<u8>,
    /// Searches start here, so each wait looks only at output after the previous match.
    seen: usize,
}

impl CliTerminal {
    fn spawn(hq: &str, args: &[&str], rows: u16, cols: u16) -> Self {
        let (pty, pts) = pty_process::open().unwrap();
        pty.resize(pty_process::Size::new(rows, cols)).unwrap();
        let child = pty_process::Command::new(binary("agentrelay"))
            .args(args)
            .env("AGENTRELAY_HQ", hq)
            .env("AGENTRELAY_TOKEN", ADMIN_TOKEN)
            .env("AGENTRELAY_CREDENTIALS", "/nonexistent/agentrelay.toml")
            .env("TERM", "xterm-256color")
            .kill_on_drop(true)
            .spawn(pts)
            .unwrap();
        Self { pty, child, output: Vec::new(), seen: 0 }
    }

    /// Reads until `needle` appears after the previous match.
    async fn read_until(&mut self, needle: &str) {
        let found = tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(at) = find(&self.output[self.seen..], needle.as_bytes()) {
                    self.seen += at + needle.len();
                    return;
                }
                let mut buffer = [0u8; 4096];
                match self.pty.read(&mut buffer).await {
                    Ok(0) | Err(_) => panic!("the CLI's terminal closed before {needle:?} appeared"),
                    Ok(n) => self.output.extend_from_slice(&buffer[..n]),
                }
            }
        })
        .await;
        assert!(found.is_ok(), "timed out waiting for {needle:?}; output so far:\n{}", self.text());
    }

    /// Like [`read_until`](Self::read_until), but gives up after `wait` and says whether it appeared.
    async fn appears_within(&mut self, needle: &str, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.read_until(needle)).await.is_ok()
    }

    async fn type_text(&mut self, text: &str) {
        self.pty.write_all(text.as_bytes()).await.unwrap();
    }

    /// Whether the terminal echoes and edits lines (its normal mode, not raw).
    fn is_cooked(&self) -> bool {
        let flags = tcgetattr(&self.pty).unwrap().local_flags;
        flags.contains(LocalFlags::ECHO) && flags.contains(LocalFlags::ICANON)
    }

    /// Waits for the CLI to exit, reading its terminal meanwhile; its exit code.
    async fn exit_code(&mut self) -> i32 {
        let status = tokio::time::timeout(TIMEOUT, async {
            let mut buffer = [0u8; 4096];
            let mut open = true;
            loop {
                tokio::select! {
                    status = self.child.wait() => return status.unwrap(),
                    read = self.pty.read(&mut buffer), if open => match read {
                        Ok(0) | Err(_) => open = false,
                        Ok(n) => self.output.extend_from_slice(&buffer[..n]),
                    },
                }
            }
        })
        .await
        .expect("the CLI did not exit");
        // Whatever it printed last is still in the PTY's buffer.
        let mut buffer = [0u8; 4096];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), self.pty.read(&mut buffer)).await
        {
            if n == 0 {
                break;
            }
            self.output.extend_from_slice(&buffer[..n]);
        }
        status.code().expect("exited, not killed")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).into_owned()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The CLI as a plain process (pipes, no terminal), with the admin token unless `token` is given.
fn cli(hq: &str, token: Option<&str>, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary("agentrelay"));
    command
        .args(args)
        .env("AGENTRELAY_HQ", hq)
        .env("AGENTRELAY_TOKEN", token.unwrap_or(ADMIN_TOKEN))
        .env("AGENTRELAY_CREDENTIALS", "/nonexistent/agentrelay.toml")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(mut command: tokio::process::Command) -> Run {
    let output = tokio::time::timeout(TIMEOUT, command.output()).await.expect("CLI hung").unwrap();
    Run {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn setup(name: &str) -> (TestHq, TestRunner, Uuid) {
    let hq = TestHq::start().await;
    let runner = TestRunner::start(&hq, name).await;
    let id = runner.id;
    (hq, runner, id)
}

const SHELL: &[&str] = &["bash", "--norc", "--noprofile", "-i"];

#[tokio::test(flavor = "multi_thread")]
async fn attach_types_resizes_detaches_reattaches_and_passes_the_exit_code_on() {
    let (hq, _runner, runner_id) = setup("cli-attach").await;
    let session = hq.start_session(runner_id, SHELL).await;
    let id = session.id.to_string();

    let mut term = CliTerminal::spawn(&hq.url(""), &["attach", &id], 30, 100);
    term.read_until("bash-").await;
    // The local size is sent at attach: the remote shell sees 30x100, not the 24x80 it began with.
    term.type_text("stty size\r").await;
    term.read_until("30 100").await;
    assert!(!term.is_cooked(), "the local terminal is in raw mode while attached");

    term.type_text("echo $((6*7))-cli\r").await;
    term.read_until("42-cli").await;

    // A local resize (SIGWINCH) follows to the session.
    term.pty.resize(pty_process::Size::new(40, 120)).unwrap();
    let mut resized = false;
    for _ in 0..20 {
        term.type_text("stty size\r").await;
        if term.appears_within("40 120", Duration::from_millis(750)).await {
            resized = true;
            break;
        }
    }
    assert!(resized, "the session never saw 40x120:\n{}", term.text());

    // Ctrl-] d detaches: exit 0, terminal restored, session still running.
    term.type_text("\x1dd").await;
    assert_eq!(term.exit_code().await, 0);
    assert!(term.text().contains("detached from session"), "{}", term.text());
    assert!(term.text().contains("\x1b[?1049l"), "terminal modes are reset on the way out");
    assert!(term.is_cooked(), "the local terminal is back to normal after a detach");
    assert_eq!(hq.session(session.id).await.status, SessionStatus::Running);

    // Re-attach by a prefix of the id: the history is replayed, and the exit code comes through.
    let mut again = CliTerminal::spawn(&hq.url(""), &["attach", &id[..24]], 30, 100);
    again.read_until("42-cli").await;
    again.type_text("exit 5\r").await;
    assert_eq!(again.exit_code().await, 5);
    assert!(again.is_cooked(), "the local terminal is back to normal after the session ended");
    hq.wait_for_session(session.id, SessionStatus::Exited).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_starts_at_the_local_size_and_exits_with_the_remote_code() {
    let (hq, _runner, _) = setup("cli-run").await;
    let mut term = CliTerminal::spawn(
        &hq.url(""),
        &["run", "--runner", "cli-run", "--", "sh", "-c", "stty size; echo out-$((3+4)); exit 7"],
        33,
        99,
    );
    assert_eq!(term.exit_code().await, 7);
    let text = term.text();
    assert!(text.contains("33 99"), "the session started at the local size: {text}");
    assert!(text.contains("out-7"), "{text}");
    assert!(term.is_cooked());

    // Without a terminal (a script): output on stdout, a signal becomes 128+N.
    let killed = run(cli(
        &hq.url(""),
        None,
        &["run", "--runner", "cli-run", "--", "sh", "-c", "echo bye; kill -9 $$"],
    ))
    .await;
    assert_eq!(killed.code, 128 + 9, "{}", killed.stderr);
    assert!(killed.stdout.contains("bye"), "{}", killed.stdout);

    // --detach prints the id and leaves the session running.
    let detached =
        run(cli(&hq.url(""), None, &["run", "--runner", "cli-run", "--detach", "--", "sleep", "30"])).await;
    assert_eq!(detached.code, 0, "{}", detached.stderr);
    let id: Uuid = detached.stdout.trim().parse().expect("a session id on stdout");
    assert_eq!(hq.session(id).await.status, SessionStatus::Running, "--detach returns once it runs");

    // A program that cannot start: --detach prints no id, says why in the runner's words, and
    // exits non-zero.
    let _lenient = TestRunner::start_with(&hq, "cli-lenient", &["--allow", "no-such-program"]).await;
    let failed =
        run(cli(&hq.url(""), None, &["run", "--runner", "cli-lenient", "--detach", "--", "no-such-program"]))
            .await;
    assert_eq!(failed.code, 255, "{}", failed.stderr);
    assert_eq!(failed.stdout, "");
    assert!(
        failed.stderr.contains("could not start") && failed.stderr.contains("cannot start 'no-such-program'"),
        "{}",
        failed.stderr
    );
}

/// Attaches through a proxy to a session printing `lines` numbered lines and exiting 3, lets
/// `disturb` break the connection after line 20, and checks every line arrives exactly once.
async fn resume_through(name: &str, lines: usize, extra: &[&str], disturb: impl FnOnce(&TcpProxy)) {
    let (hq, _runner, runner_id) = setup(name).await;
    let proxy = TcpProxy::start(hq.addr).await;
    // Steady output for a while after the trouble, so the resume has something to catch up on.
    let script = format!("for i in $(seq 1 {lines}); do echo line-$i; sleep 0.01; done; exit 3");
    let session = hq.start_session(runner_id, &["sh", "-c", &script]).await;
    let id = session.id.to_string();
    let mut args = extra.to_vec();
    args.extend(["attach", &id]);
    let mut child =
        cli(&proxy.url(), None, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(TIMEOUT, async {
        while find(&seen, b"line-20\r\n").is_none() {
            let n = stdout.read(&mut buffer).await.unwrap();
            assert!(n > 0, "output ended early");
            seen.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("line-20 never arrived");
    let before = proxy.accepted();
    disturb(&proxy);

    stdout.read_to_end(&mut seen).await.unwrap();
    let status = tokio::time::timeout(TIMEOUT, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(3), "the exit code came through after the resume");
    assert!(proxy.accepted() > before, "the CLI reconnected through the proxy");
    let text = String::from_utf8(seen).unwrap();
    let got: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let expected: Vec<String> = (1..=lines).map(|i| format!("line-{i}")).collect();
    assert_eq!(got, expected, "every line exactly once, in order");
}

#[tokio::test(flavor = "multi_thread")]
async fn attach_resumes_after_the_connection_is_cut_without_losing_or_repeating_output() {
    resume_through("cli-blip", 300, &[], TcpProxy::cut).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_gone_silent_is_noticed_and_resumed() {
    // Packets stop, the socket stays open: only the keepalive can tell.
    resume_through("cli-frozen", 300, &["--keepalive", "200ms"], TcpProxy::freeze).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_logs_recordings_kills_and_tokens() {
    let (hq, _runner, runner_id) = setup("cli-lists").await;
    let url = hq.url("");

    let runners = run(cli(&url, None, &["runners"])).await;
    assert_eq!(runners.code, 0, "{}", runners.stderr);
    let row = runners.stdout.lines().find(|l| l.starts_with("cli-lists")).expect("runner row");
    assert!(row.contains("online"), "{row}");
    let json: Value =
        serde_json::from_str(&run(cli(&url, None, &["runners", "--json"])).await.stdout).unwrap();
    assert_eq!(json[0]["id"], runner_id.to_string());

    // Colours and carriage returns in the output; --plain leaves the text.
    let coloured =
        hq.start_session(runner_id, &["sh", "-c", r"printf '\033[1;31mred\033[0m text\nline two\n'"]).await;
    hq.wait_for_session(coloured.id, SessionStatus::Exited).await;
    let id = coloured.id.to_string();
    let raw = run(cli(&url, None, &["logs", &id])).await;
    assert_eq!(raw.stdout, "\x1b[1;31mred\x1b[0m text\r\nline two\r\n");
    let plain = run(cli(&url, None, &["logs", &id, "--plain"])).await;
    assert_eq!(plain.stdout, "red text\nline two\n");

    let recording = run(cli(&url, None, &["recording", &id])).await;
    let header: Value = serde_json::from_str(recording.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert!(recording.stdout.contains("line two"));

    // Live sessions by default, finished ones with --all.
    let live = hq
        .start_session(runner_id, &["sh", "-c", "echo started; printf 'name? '; read line; echo got-$line"])
        .await;
    hq.wait_for_session(live.id, SessionStatus::Running).await;
    let sessions = run(cli(&url, None, &["sessions"])).await;
    assert!(sessions.stdout.contains(&live.id.to_string()), "{}", sessions.stdout);
    assert!(!sessions.stdout.contains(&id), "finished sessions are hidden without --all");
    let all: Value =
        serde_json::from_str(&run(cli(&url, None, &["sessions", "--all", "--json"])).await.stdout).unwrap();
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&id.as_str()) && ids.contains(&live.id.to_string().as_str()), "{ids:?}");

    // logs --follow shows a prompt still waiting for its newline, and goes on until the end.
    let mut follow = cli(&url, None, &["logs", &live.id.to_string(), "--follow", "--plain"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = follow.stdout.take().unwrap();
    let mut followed = Vec::new();
    while !String::from_utf8_lossy(&followed).contains("name? ") {
        let mut chunk = [0u8; 256];
        let n = tokio::time::timeout(TIMEOUT, stdout.read(&mut chunk))
            .await
            .expect("the prompt in time")
            .unwrap();
        assert!(n > 0, "logs ended early: {:?}", String::from_utf8_lossy(&followed));
        followed.extend_from_slice(&chunk[..n]);
    }
    let mut viewer = hq.attach(live.id, None).await;
    viewer.type_text("now\r").await;
    tokio::time::timeout(TIMEOUT, stdout.read_to_end(&mut followed)).await.unwrap().unwrap();
    assert!(follow.wait().await.unwrap().success());
    assert_eq!(String::from_utf8_lossy(&followed), "started\nname? now\ngot-now\n");

    // kill hangs the process up.
    let sleeper = hq.start_session(runner_id, &["sleep", "60"]).await;
    hq.wait_for_session(sleeper.id, SessionStatus::Running).await;
    let killed = run(cli(&url, None, &["kill", &sleeper.id.to_string()])).await;
    assert_eq!(killed.code, 0, "{}", killed.stderr);
    let ended = hq.wait_for_session(sleeper.id, SessionStatus::Exited).await;
    assert!(ended.signal.is_some(), "{ended:?}");

    // Tokens: the secret once on stdout, listed by name, revoked.
    let created = run(cli(&url, None, &["tokens", "create", "cli-user", "--scope", "user"])).await;
    assert_eq!(created.code, 0, "{}", created.stderr);
    let secret = created.stdout.trim().to_owned();
    assert!(secret.starts_with("arl_usr_"), "{secret}");
    let works = run(cli(&url, Some(&secret), &["sessions"])).await;
    assert_eq!(works.code, 0, "{}", works.stderr);
    let tokens: Vec<TokenInfo> =
        serde_json::from_str(&run(cli(&url, None, &["tokens", "list", "--json"])).await.stdout).unwrap();
    let token = tokens.iter().find(|t| t.name == "cli-user").expect("listed");
    let revoked = run(cli(&url, None, &["tokens", "revoke", &token.id.to_string()])).await;
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    eventually("the revoked token to be refused", || async {
        let refused = run(cli(&url, Some(&secret), &["sessions"])).await;
        (refused.code == 1 && refused.stderr.contains("refused the token")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_one_clear_line_and_a_nonzero_exit() {
    let (hq, _runner, _) = setup("cli-errors").await;
    let url = hq.url("");
    // A port bound but not listening: connections to it are refused, and no other test gets it.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let closed = reserved.local_addr().unwrap();
    let cases: Vec<(tokio::process::Command, i32, &str)> = vec![
        (cli(&format!("http://{closed}"), None, &["sessions"]), 1, "cannot reach HQ"),
        (cli(&url, Some("wrong-token"), &["runners"]), 1, "refused the token"),
        (cli(&url, None, &["attach", &Uuid::now_v7().to_string()]), 255, "no session with id"),
        (cli(&url, None, &["logs", "not-an-id"]), 1, "is not a session id"),
        (cli(&url, None, &["run", "--runner", "nobody", "--", "true"]), 255, "no runner named 'nobody'"),
        (cli(&url, None, &["run", "--label", "gpu=yes", "--", "true"]), 255, "no online runner has labels"),
        (cli(&url, None, &["tokens", "revoke", "nope"]), 1, "is not a token id"),
    ];
    for (command, code, message) in cases {
        let result = run(command).await;
        assert_eq!(result.code, code, "{message}: {}", result.stderr);
        assert_eq!(result.stderr.lines().count(), 1, "one line: {}", result.stderr);
        assert!(
            result.stderr.starts_with("agentrelay: ") && result.stderr.contains(message),
            "{}",
            result.stderr
        );
        assert!(result.stdout.is_empty());
    }
    let mut anonymous = cli(&url, None, &["sessions"]);
    anonymous.env_remove("AGENTRELAY_HQ").env_remove("AGENTRELAY_TOKEN");
    let result = run(anonymous).await;
    assert_eq!(result.code, 1);
    assert!(result.stderr.contains("not logged in"), "{}", result.stderr);

    let help = run(cli(&url, None, &["--help"])).await;
    assert!(help.stdout.contains("Examples:") && help.stdout.contains("Ctrl-] then d"), "{}", help.stdout);
    let completions = run(cli(&url, None, &["completions", "bash"])).await;
    assert_eq!(completions.code, 0);
    assert!(completions.stdout.contains("complete -F") && completions.stdout.contains("attach"));

    // A reader that goes away early is no error to report.
    let mut listing = cli(&url, None, &["completions", "bash"]);
    listing.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = listing.spawn().unwrap();
    drop(child.stdout.take());
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output()).await.unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"), "{output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn login_checks_the_token_and_saves_it_private() {
    let hq = TestHq::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentrelay/config.toml");
    let login = |token: &str| {
        let mut command = tokio::process::Command::new(binary("agentrelay"));
        command
            .args(["login", "--hq", &hq.url("")])
            .env("AGENTRELAY_CREDENTIALS", &config)
            .env_remove("AGENTRELAY_HQ")
            .env_remove("AGENTRELAY_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let line = format!("{token}\n");
        async move {
            child.stdin.take().unwrap().write_all(line.as_bytes()).await.unwrap();
            let output = tokio::time::timeout(TIMEOUT, child.wait_with_output()).await.unwrap().unwrap();
            (output.status.code().unwrap(), String::from_utf8_lossy(&output.stderr).into_owned())
        }
    };

    let (code, stderr) = login("wrong").await;
    assert_eq!(code, 1);
    assert!(stderr.contains("refused the token"), "{stderr}");
    assert!(!config.exists(), "a refused token is not saved");

    let (code, stderr) = login(ADMIN_TOKEN).await;
    assert_eq!(code, 0, "{stderr}");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // With only the saved file, commands reach HQ.
    let mut sessions = tokio::process::Command::new(binary("agentrelay"));
    sessions
        .args(["sessions", "--json"])
        .env("AGENTRELAY_CREDENTIALS", &config)
        .env_remove("AGENTRELAY_HQ")
        .env_remove("AGENTRELAY_TOKEN");
    let result = run(sessions).await;
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(result.stdout.trim(), "[]");
    // The saved token goes only to the HQ it was saved for.
    let mut elsewhere = tokio::process::Command::new(binary("agentrelay"));
    elsewhere
        .args(["--hq", "http://127.0.0.1:9", "sessions"])
        .env("AGENTRELAY_CREDENTIALS", &config)
        .env_remove("AGENTRELAY_HQ")
        .env_remove("AGENTRELAY_TOKEN");
    let refused = run(elsewhere).await;
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("no token for http://127.0.0.1:9"), "{}", refused.stderr);
    // The environment overrides the file.
    let mut overridden = tokio::process::Command::new(binary("agentrelay"));
    overridden.args(["sessions"]).env("AGENTRELAY_CREDENTIALS", &config).env("AGENTRELAY_TOKEN", "other");
    assert!(run(overridden).await.stderr.contains("refused the token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn input_typed_while_hq_is_unreachable_arrives_after_the_reconnect() {
    let (hq, _runner, runner_id) = setup("cli-outage").await;
    let proxy = TcpProxy::start(hq.addr).await;
    let script = "stty -echo; while read line; do echo got-$line; done";
    let session = hq.start_session(runner_id, &["sh", "-c", script]).await;
    let mut child = cli(&proxy.url(), None, &["attach", &session.id.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut read_until = async |needle: &str, seen: &mut Vec<u8>| {
        let mut buffer = [0u8; 4096];
        tokio::time::timeout(TIMEOUT, async {
            while find(seen, needle.as_bytes()).is_none() {
                let n = stdout.read(&mut buffer).await.unwrap();
                assert!(n > 0, "output ended before {needle:?}");
                seen.extend_from_slice(&buffer[..n]);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{needle:?} never arrived"));
    };
    stdin.write_all(b"one\n").await.unwrap();
    read_until("got-one", &mut seen).await;

    // HQ goes away: the connection is cut and redials are refused until further notice.
    proxy.refuse(true);
    let before = proxy.accepted();
    proxy.cut();
    eventually("the CLI to try to reconnect", || async { (proxy.accepted() > before).then_some(()) }).await;
    stdin.write_all(b"two\nthree\n").await.unwrap();
    proxy.refuse(false);
    read_until("got-three", &mut seen).await;
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(text.matches("got-two").count(), 1, "{text}");
    assert_eq!(text.matches("got-three").count(), 1, "{text}");
}
