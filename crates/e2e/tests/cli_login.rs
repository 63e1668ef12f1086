//! `agentrelay login` on a terminal without a token: the browser sign-in. HQ's page asks
//! "Allow the CLI on <host> to act as you?", hands a one-time code to the CLI's loopback
//! listener, and the CLI trades it with its PKCE verifier for a token named after the host.

use std::time::Duration;

use agentrelay_e2e::{TIMEOUT, TestHq, binary};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

/// `agentrelay login --hq … --no-browser` in a PTY of its own (a person's terminal), with no
/// token in its environment; it prints the sign-in page's address.
struct LoginTerminal {
    pty: pty_process::Pty,
    child: tokio::process::Child,
    output: String,
}

impl LoginTerminal {
    fn spawn(hq: &str, credentials: &std::path::Path) -> Self {
        let (pty, pts) = pty_process::open().unwrap();
        let child = pty_process::Command::new(binary("agentrelay"))
            .args(["login", "--hq", hq, "--no-browser"])
            .env_remove("AGENTRELAY_TOKEN")
            .env("AGENTRELAY_CREDENTIALS", credentials)
            .kill_on_drop(true)
            .spawn(pts)
            .unwrap();
        Self { pty, child, output: String::new() }
    }

    /// The sign-in page's address, once printed.
    async fn page_url(&mut self) -> String {
        tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(line) =
                    self.output.lines().find(|l| l.trim_start().starts_with("http") && l.contains("host="))
                {
                    return line.trim().to_owned();
                }
                let mut buffer = [0u8; 4096];
                match self.pty.read(&mut buffer).await {
                    Ok(0) | Err(_) => panic!("the CLI stopped before printing the page: {}", self.output),
                    Ok(n) => self.output.push_str(&String::from_utf8_lossy(&buffer[..n])),
                }
            }
        })
        .await
        .expect("the CLI prints the sign-in page")
    }

    /// Waits for the CLI to exit; its code and everything it printed.
    async fn finish(mut self) -> (i32, String) {
        let mut buffer = [0u8; 4096];
        let read_rest = async {
            while let Ok(n) = self.pty.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                self.output.push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), read_rest).await;
        let status = tokio::time::timeout(TIMEOUT, self.child.wait()).await.expect("the CLI exits").unwrap();
        (status.code().unwrap_or(-1), self.output)
    }
}

/// A dashboard sign-in (cookie) of the holder of `token`.
async fn cookie_of(hq: &TestHq, token: &str) -> String {
    let login = hq.http.post(hq.url("/api/login")).json(&json!({"token": token})).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

/// Answers the page's question in the browser: the `Location` it sends the browser to.
async fn decide(hq: &TestHq, cookie: &str, page: &str, decision: &str) -> String {
    let no_redirects =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let query = page.split_once('?').unwrap().1;
    let mut form: Vec<(String, String)> = query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), percent_decode(v))
        })
        .collect();
    form.push(("decision".to_owned(), decision.to_owned()));
    let answer = no_redirects
        .post(hq.url("/api/auth/cli"))
        .header("cookie", cookie)
        .header("origin", hq.url(""))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    answer.headers()["location"].to_str().unwrap().to_owned()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_signs_in_through_the_browser_with_a_one_time_code_and_pkce() {
    let hq = TestHq::start().await;
    let (ann, ann_token) = hq.person("ann", "member").await;
    let cookie = cookie_of(&hq, &ann_token).await;
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("config.toml");

    // The page asks, naming the host; without a sign-in it sends the person to sign in first.
    let mut cli = LoginTerminal::spawn(&hq.url(""), &credentials);
    let page = cli.page_url().await;
    assert!(page.starts_with(&hq.url("/api/auth/cli?")) && page.contains("code_challenge="), "{page}");
    let host = gethostname::gethostname().into_string().unwrap();
    let asked = hq.http.get(&page).header("cookie", &cookie).send().await.unwrap();
    let csp = asked.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("form-action 'self' http://127.0.0.1:*"), "{csp}");
    let text = asked.text().await.unwrap();
    assert!(text.contains(&format!("Allow the CLI on <strong>{host}</strong> to act as you, ann")), "{text}");
    let anonymous = hq.http.get(&page).send().await.unwrap().text().await.unwrap();
    assert!(anonymous.contains("Sign in to continue") && !anonymous.contains("Allow the CLI"));

    // A code without the CLI's verifier is worth nothing, and it is spent: the CLI fails.
    let back = decide(&hq, &cookie, &page, "allow").await;
    assert!(
        back.starts_with("http://127.0.0.1:") && back.contains("code=") && !back.contains("arl_"),
        "{back}"
    );
    let code = back.split("code=").nth(1).unwrap().split('&').next().unwrap();
    let stolen = json!({"code": code, "code_verifier": "a".repeat(43)});
    let refused = hq.http.post(hq.url("/api/auth/cli/token")).json(&stolen).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let landed = reqwest::get(&back).await.unwrap();
    assert!(landed.status().is_success());
    let (status, output) = cli.finish().await;
    assert_eq!(status, 1, "{output}");
    assert!(output.contains("code is unknown, used or expired"), "{output}");
    assert!(!credentials.exists());

    // The real thing: allowed, the CLI trades the code and saves a token named after the host.
    let mut cli = LoginTerminal::spawn(&hq.url(""), &credentials);
    let page = cli.page_url().await;
    let back = decide(&hq, &cookie, &page, "allow").await;
    let landed = reqwest::get(&back).await.unwrap().text().await.unwrap();
    assert!(landed.contains("signed in"), "{landed}");
    let (status, output) = cli.finish().await;
    assert_eq!(status, 0, "{output}");
    assert!(output.contains("as ann <ann@example.test> (member)"), "{output}");
    let saved = std::fs::read_to_string(&credentials).unwrap();
    assert!(saved.contains("arl_usr_"), "a user token is saved");
    let tokens: Value = hq
        .http
        .get(hq.url("/api/tokens"))
        .bearer_auth(&ann_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = tokens.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&format!("CLI on {host}").as_str()), "{names:?}");

    // whoami says who.
    let whoami = tokio::process::Command::new(binary("agentrelay"))
        .arg("whoami")
        .env_remove("AGENTRELAY_TOKEN")
        .env_remove("AGENTRELAY_HQ")
        .env("AGENTRELAY_CREDENTIALS", &credentials)
        .output()
        .await
        .unwrap();
    assert!(whoami.status.success());
    let said = String::from_utf8_lossy(&whoami.stdout);
    assert_eq!(said.trim(), format!("ann <ann@example.test> (member) at {}", hq.url("")));
    let _ = ann;

    // Denied in the browser: the CLI says so and saves nothing new.
    std::fs::remove_file(&credentials).unwrap();
    let mut cli = LoginTerminal::spawn(&hq.url(""), &credentials);
    let page = cli.page_url().await;
    let back = decide(&hq, &cookie, &page, "deny").await;
    assert!(back.contains("error=access_denied"));
    reqwest::get(&back).await.unwrap();
    let (status, output) = cli.finish().await;
    assert_eq!(status, 1);
    assert!(output.contains("refused in the browser"), "{output}");
    assert!(!credentials.exists());
}
