//! `lossgpu`: the command-line front end of the library (SPEC §4).
//!
//! Exit status: 0 on success, 2 on any error, always with exactly one line
//! on stderr, so scripts can rely on `$?` and on a parsable message.

mod cli;

use clap::error::ErrorKind;
use clap::Parser;
use std::os::unix::fs::DirBuilderExt;
use std::process::ExitCode;

fn main() -> ExitCode {
    let runtime_dir = quiet_drivers();
    let code = run();
    if let Some(dir) = runtime_dir {
        let _ = std::fs::remove_dir(dir); // only if the drivers left it empty
    }
    code
}

fn run() -> ExitCode {
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
        Ok(Ok(code)) => ExitCode::from(code),
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

/// The longest error line printed; longer messages (a driver's, an echo
/// of a file) are cut, so stderr stays one readable line.
const MAX_LINE: usize = 300;

/// Messages from drivers may contain newlines; stderr must stay one short
/// line.
fn one_line(s: &str) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(MAX_LINE) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// Mesa's drivers print "XDG_RUNTIME_DIR is invalid or not set" (twice) on
/// stderr when the variable is unset, as in containers, cron and ssh; the
/// command's stderr is one line of its own. So, before any thread or
/// instance exists, an unset variable gets a private directory of this
/// process, removed at exit; returns it.
fn quiet_drivers() -> Option<std::path::PathBuf> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("lossgpu-runtime-{}", std::process::id()));
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    made.ok()?;
    std::env::set_var("XDG_RUNTIME_DIR", &dir);
    Some(dir)
}
