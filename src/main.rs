//! `lossgpu`: the command-line front end of the library (SPEC §4).
//!
//! Exit status: 0 on success, 2 on any error, always with exactly one line
//! on stderr, so scripts can rely on `$?` and on a parsable message.

mod cli;

use clap::error::ErrorKind;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => return parse_error(e),
    };
    // A panic would print a multi-line message and exit 101; the contract is
    // one line and status 2, so the hook prints that line and we map the unwind.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        eprintln!("lossgpu: error: internal error: {}", one_line(&msg));
    }));
    match std::panic::catch_unwind(|| cli::run(args)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("lossgpu: error: {}", one_line(&e.to_string()));
            ExitCode::from(2)
        }
        Err(_) => ExitCode::from(2),
    }
}

/// Help and version are successes; every other clap error keeps only its
/// first line ("error: unexpected argument '--x' found"), dropping clap's
/// usage block so stderr stays one line. A first line ending in ':' is
/// continued by the indented lines under it (the missing arguments).
fn parse_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let text = e.render().to_string();
            let mut lines = text.lines().map(str::trim).skip_while(|l| l.is_empty());
            let mut message = lines.next().unwrap_or("error: bad arguments").to_string();
            if message.ends_with(':') {
                let more: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
                message = format!("{message} {}", more.join(", "));
            }
            eprintln!("lossgpu: {message}");
            ExitCode::from(2)
        }
    }
}

/// Messages from drivers may contain newlines; stderr must stay one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
