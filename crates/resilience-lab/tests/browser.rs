//! The HTML report in a real browser: a short lab run writes it, headless Chromium renders it,
//! and every chart must have drawn its data, not just its legend.
//!
//! Chromium is required: `scripts/test` installs Debian's `chromium`. Without it this test
//! fails, it does not skip.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Okabe-Ito colours the charts use (see `src/svg.rs`).
const GREEN: [u8; 3] = [0x00, 0x9E, 0x73];
const SKY: [u8; 3] = [0x56, 0xB4, 0xE9];
const ORANGE: [u8; 3] = [0xE6, 0x9F, 0x00];
const VERMILLION: [u8; 3] = [0xD5, 0x5E, 0x00];
const BLUE: [u8; 3] = [0x00, 0x72, 0xB2];

/// A colour, and how many pixels of it a chart must show.
type Ink = ([u8; 3], usize);

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resilience-lab-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium on `page` with its own fresh profile, with `extra` arguments.
fn chromium(dir: &Path, page: &Path, extra: &[String]) -> std::process::Output {
    // A fresh profile per launch, so no state carries from one render to the next.
    static LAUNCHES: AtomicUsize = AtomicUsize::new(0);
    let profile = dir.join(format!(
        "profile-{}",
        LAUNCHES.fetch_add(1, Ordering::Relaxed)
    ));
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output();
    match output {
        Ok(output) => output,
        Err(error) => panic!(
            "chromium is missing ({error}): this test needs Debian's chromium on PATH; \
             scripts/test installs it (apt-get install chromium)"
        ),
    }
}

/// Decodes a PNG into RGB pixels with its width.
fn pixels(path: &Path) -> (Vec<[u8; 3]>, u32) {
    let file =
        std::fs::File::open(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let samples = info.color_type.samples();
    let pixels = buffer[..info.buffer_size()]
        .chunks_exact(samples)
        .map(|pixel| match samples {
            1 | 2 => [pixel[0]; 3],
            _ => [pixel[0], pixel[1], pixel[2]],
        })
        .collect();
    (pixels, info.width)
}

fn near(pixel: [u8; 3], colour: [u8; 3]) -> bool {
    pixel
        .iter()
        .zip(colour)
        .map(|(a, b)| u32::from(a.abs_diff(b)))
        .sum::<u32>()
        < 30
}

fn count(pixels: &[[u8; 3]], colour: [u8; 3]) -> usize {
    pixels.iter().filter(|pixel| near(**pixel, colour)).count()
}

/// One chart's `<svg>` element out of the report.
fn chart<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<svg id=\"{id}\""))
        .unwrap_or_else(|| panic!("no <svg id={id:?}> in the report"));
    let end = start + html[start..].find("</svg>").unwrap() + "</svg>".len();
    &html[start..end]
}

#[test]
fn every_chart_of_the_html_report_draws_in_a_real_browser() {
    let dir = scratch();
    let report = dir.join("report.html");
    let run = Command::new(env!("CARGO_BIN_EXE_resilience-lab"))
        .args(["--duration", "4s", "--report"])
        .arg(&report)
        .output()
        .expect("the lab binary runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let html = std::fs::read_to_string(&report).unwrap();

    // The browser's own view of the page: every chart is in its DOM.
    let dom = chromium(&dir, &report, &["--dump-dom".to_owned()]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    for id in ["outcomes", "latency", "breaker"] {
        assert!(
            dom.contains(&format!("<svg id=\"{id}\"")),
            "no {id} chart in the DOM:\n{dom}"
        );
    }

    // The whole page renders, and is not blank.
    let shot = dir.join("report.png");
    chromium(
        &dir,
        &report,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,2000".to_owned(),
        ],
    );
    let (page, _) = pixels(&shot);
    let inked = page.iter().filter(|p| p.iter().any(|&c| c < 200)).count();
    assert!(
        inked > page.len() / 20,
        "the page is nearly blank: {inked} of {} pixels",
        page.len()
    );

    // Each chart alone on a page of its own width: its data must have drawn, which the
    // legend's small swatches alone (a few hundred pixels) cannot satisfy.
    let expectations: [(&str, &[Ink]); 3] = [
        (
            "outcomes",
            &[
                (GREEN, 20_000),
                (SKY, 5_000),
                (VERMILLION, 5_000),
                (ORANGE, 600),
            ],
        ),
        ("latency", &[(BLUE, 1_000), (VERMILLION, 1_000)]),
        ("breaker", &[(GREEN, 2_000), (VERMILLION, 2_000)]),
    ];
    for (id, colours) in expectations {
        let page = dir.join(format!("{id}.html"));
        std::fs::write(
            &page,
            format!(
                "<!doctype html><html><body style=\"margin:0;background:#fff\">\
                 <div style=\"width:1000px\">{}</div></body></html>",
                chart(&html, id)
            ),
        )
        .unwrap();
        let shot = dir.join(format!("{id}.png"));
        chromium(
            &dir,
            &page,
            &[
                format!("--screenshot={}", shot.display()),
                "--window-size=1000,600".to_owned(),
            ],
        );
        let (pixels, width) = pixels(&shot);
        assert_eq!(width, 1000);
        for &(colour, at_least) in colours {
            let found = count(&pixels, colour);
            assert!(
                found >= at_least,
                "chart {id}: {found} pixels of {colour:02X?}, expected at least {at_least}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
