//! `kiln next --find` and `--plot` end to end, on the tiny GPT-2 checkpoint.

use std::process::Command;

use serde_json::Value;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/gpt2-tiny-f32");
const PROMPT: &str = "Hello world";
/// The plot's colour for the top token's marker (plot/layout.rs TOP_COLOR).
const TOP_RGB: [u8; 3] = [214, 39, 40];

fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_BACKEND", std::env::var("KILN_TEST_BACKEND").unwrap_or_else(|_| "vulkan".into()));
    c
}

fn run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().expect("kiln runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn next_json(extra: &[&str]) -> Value {
    let (ok, stdout, stderr) = run(kiln().args(["next", "-m", MODEL, "--json", PROMPT]).args(extra));
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).expect("stdout is JSON")
}

#[test]
fn find_agrees_with_the_table() {
    let table = next_json(&["--top", "5"]);
    let top = table["top"].as_array().unwrap();
    // Find every listed token by its own text: those that encode back to themselves
    // must have the table's rank, logit and probability.
    let mut args = Vec::new();
    for t in top {
        args.extend(["--find".to_string(), t["token"].as_str().unwrap().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = next_json(&[&["--top", "5"], &args[..]].concat());
    let top = out["top"].as_array().unwrap();
    let ids = |v: &[Value]| v.iter().map(|t| t["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(top), ids(table["top"].as_array().unwrap()), "--find changes nothing else");
    let finds = out["find"].as_array().unwrap();
    assert_eq!(finds.len(), 5);
    let mut matched = 0;
    for (f, t) in finds.iter().zip(top) {
        assert_eq!(f["text"], t["token"]);
        if f["id"] == t["id"] {
            let row = top.iter().position(|r| r["id"] == f["id"]).unwrap() + 1;
            assert_eq!(f["rank"].as_u64().unwrap() as usize, row, "{f}");
            for key in ["token", "logit", "prob", "logprob"] {
                assert_eq!(f[key], t[key], "{key} of {f}");
            }
            matched += 1;
        }
    }
    assert_eq!(finds[0]["id"], top[0]["id"], "the top-1 token's text finds it");
    assert_eq!(finds[0]["rank"], 1);
    assert!(matched >= 2, "{out}");
}

#[test]
fn find_json_object_and_pieces() {
    let out = next_json(&["--top", "1", "--find", " the", "--find", "hello there"]);
    let finds = out["find"].as_array().unwrap();
    let one = &finds[0];
    for key in ["text", "id", "token", "rank", "logit", "prob", "logprob", "pieces"] {
        assert!(one.get(key).is_some(), "missing {key} in {one}");
    }
    assert_eq!(one["text"], " the");
    assert_eq!(one["token"], " the");
    assert_eq!(one["pieces"].as_array().unwrap().len(), 1);
    let (prob, logprob) = (one["prob"].as_f64().unwrap(), one["logprob"].as_f64().unwrap());
    assert!((prob - logprob.exp()).abs() <= 1e-6 * prob.max(1e-30), "{one}");
    assert!(one["rank"].as_u64().unwrap() >= 1);

    let many = &finds[1];
    let pieces = many["pieces"].as_array().unwrap();
    assert!(pieces.len() > 1, "{many}");
    assert_eq!(many["id"], pieces[0]["id"], "the first piece is the one ranked");
    assert_eq!(many["token"], pieces[0]["token"]);
}

#[test]
fn find_in_the_table_says_when_text_is_several_tokens() {
    let (ok, stdout, stderr) = run(kiln().args(["next", "-m", MODEL, "--top", "3", PROMPT, "--find", "hello there"]));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("find \"hello there\": "), "{stdout}");
    assert!(stdout.contains("tokens ("), "{stdout}");
    assert!(stdout.contains("ranking the first"), "{stdout}");
}

#[test]
fn plot_writes_svg_and_png() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("logits.svg");
    let png = dir.path().join("logits.PNG");
    for path in [&svg, &png] {
        let (ok, _, stderr) = run(kiln().args(["next", "-m", MODEL, PROMPT, "--find", " the", "--plot"]).arg(path));
        assert!(ok, "{stderr}");
        assert!(stderr.contains("plot written to"), "{stderr}");
    }
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg "), "{text}");
    assert!(text.contains("xmlns=\"http://www.w3.org/2000/svg\""), "{text}");
    assert!(text.trim_end().ends_with("</svg>"));
    assert!(text.contains("fill=\"#D62728\""), "top marker colour");
    assert!(text.contains("Next-token logits after &quot;Hello world&quot;"), "title");
    assert!(text.contains("262: &quot; the&quot;"), "find label");

    let bytes = std::fs::read(&png).unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a valid PNG");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height, info.color_type), (960, 480, png::ColorType::Rgb));
    assert!(buf.chunks_exact(3).filter(|p| *p == TOP_RGB).count() >= 11 * 11, "top marker drawn");
}

/// Labels show each token as the table does, `{:?}` of kiln's token text: here the
/// first token of "東京" for a byte-level BPE without that word is one byte, escaped.
#[test]
fn plot_labels_escape_tokens_like_the_table() {
    const QWEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/qwen2-tiny-tied-f32");
    let (ok, stdout, stderr) = run(kiln().args(["next", "-m", QWEN, "--json", "Hello", "--find", "東京"]));
    assert!(ok, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    let find = &out["find"][0];
    let token = find["token"].as_str().unwrap();
    let label = format!("{}: {token:?}", find["id"]).replace('"', "&quot;");

    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("qwen.svg");
    let (ok, _, stderr) = run(kiln().args(["next", "-m", QWEN, "Hello", "--find", "東京", "--plot"]).arg(&svg));
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains(&format!(">{label} (")), "no label {label} in {text}");
}

#[test]
fn plot_with_a_bad_extension_fails_before_loading_the_model() {
    // The model path does not exist: the --plot error must come first.
    let (ok, _, stderr) = run(kiln().args(["next", "-m", "/no/such/model", "Hi", "--plot", "out.jpg"]));
    assert!(!ok);
    assert!(
        stderr.contains("--plot out.jpg: unknown image format; give a file name ending in .svg or .png"),
        "{stderr}"
    );
}

#[test]
fn find_errors_are_clear() {
    let (ok, _, stderr) = run(kiln().args(["next", "-m", MODEL, "Hi", "--find", ""]));
    assert!(!ok);
    assert!(stderr.contains("--find \"\" encodes to no tokens"), "{stderr}");

    // A checkpoint without tokenizer files.
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "generation_config.json", "model.safetensors"] {
        std::fs::copy(format!("{MODEL}/{f}"), dir.path().join(f)).unwrap();
    }
    let (ok, _, stderr) =
        run(kiln().args(["next", "-m"]).arg(dir.path()).args(["--prompt-ids", "1,2", "--find", " the"]));
    assert!(!ok);
    assert!(stderr.contains("--find needs a tokenizer"), "{stderr}");
}
