//! Headless Chromium for the tests of report pages: the DOM after a page's
//! script ran, its console messages, and every sign of a script in trouble.

use std::path::Path;
use std::process::Command;

use super::program;

/// What headless Chromium made of a page: the DOM after its scripts ran, and
/// the console messages it logged.
pub struct Rendered {
    pub dom: String,
    pub console: Vec<String>,
}

/// Open `page` (with `fragment`, e.g. `#open=all`) in headless Chromium; with
/// `screenshot`, save one there instead of dumping the DOM.
pub fn chromium(page: &Path, fragment: &str, screenshot: Option<&Path>) -> Rendered {
    let profile = tempfile::tempdir().unwrap();
    let mut command = Command::new(program("chromium"));
    command.args([
        "--headless",
        // Root has no user namespace sandbox to give Chromium.
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1300,3200",
    ]);
    command.arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(path) => command.arg(format!("--screenshot={}", path.display())),
        None => command.arg("--dump-dom"),
    };
    command.arg(format!("file://{}{fragment}", page.display()));
    let output = command.output().expect("run chromium");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chromium failed: {stderr}");
    Rendered {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        // Chromium's own pages log too (a "Slow network is detected" notice
        // from chrome://resources on a loaded machine): only what a page of
        // ours logged counts.
        console: stderr
            .lines()
            .filter(|line| line.contains(":CONSOLE") && !line.contains("source: chrome://"))
            .map(str::to_string)
            .collect(),
    }
}

/// Every sign of a script that did not run cleanly: console messages of the
/// page (the report logs none), errors the page's trap recorded, a script that never
/// reached its end.
pub fn script_trouble(rendered: &Rendered) -> Vec<String> {
    let mut trouble = rendered.console.clone();
    if let Some(at) = rendered.dom.find("data-js-errors=") {
        trouble.push(rendered.dom[at..].chars().take(300).collect());
    }
    if !rendered.dom.contains("data-ready=\"yes\"") {
        trouble.push("the report's script did not finish".into());
    }
    trouble
}
