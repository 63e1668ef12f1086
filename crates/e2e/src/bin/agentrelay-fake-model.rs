//! `agentrelay-fake-model --on PROMPT --run COMMAND --answer TEXT …`: the test harness's fake
//! model server as a program, for the browser tests and for trying an agent CLI by hand. Prints
//! its URL on the first line of stdout, then serves until stdin closes or it is killed.

use agentrelay_e2e::model_server::{ModelServer, Turn};
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut turns = Vec::new();
    let mut rest = args.as_slice();
    while let [flag_on, on, flag_run, run, flag_answer, answer, tail @ ..] = rest {
        if (flag_on.as_str(), flag_run.as_str(), flag_answer.as_str()) != ("--on", "--run", "--answer") {
            break;
        }
        turns.push(Turn::new(on, run, answer));
        rest = tail;
    }
    if !rest.is_empty() || turns.is_empty() {
        eprintln!("usage: agentrelay-fake-model (--on PROMPT --run COMMAND --answer TEXT)...");
        return std::process::ExitCode::from(2);
    }
    let server = match ModelServer::start_verbose(
        turns,
        std::env::var_os("AGENTRELAY_FAKE_MODEL_LOG").is_some(),
    )
    .await
    {
        Ok(server) => server,
        Err(e) => {
            eprintln!("agentrelay-fake-model: cannot listen: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{}", server.url());
    // Serves until its parent closes stdin (or kills it): it never outlives a test.
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    std::process::ExitCode::SUCCESS
}
