//! `kiln hooks`, `kiln capture` and the hook flags of `kiln next` / `kiln generate`, end
//! to end on the tiny GPT-2 checkpoint: the listed points, a capture file with the right
//! tensors, seed 002's `--set-logit " coffee"=max+10`, `--add-logit`, `--steer`, and
//! clear errors naming the flag for bad points, blocks, files and values.

use std::process::Command;

use serde_json::Value;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/gpt2-tiny-f32");
const PROMPT: &str = "I like oat milk in my";

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
    let (ok, stdout, stderr) = run(kiln().args(["next", "-m", MODEL, "--json", "--top", "3", PROMPT]).args(extra));
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).expect("stdout is JSON")
}

fn read_f32(st: &safetensors::SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    (t.shape().to_vec(), t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[test]
fn hooks_lists_every_point() {
    let (ok, stdout, stderr) = run(kiln().args(["hooks", "-m", MODEL]));
    assert!(ok, "{stderr}");
    let names: Vec<&str> = stdout.lines().map(|l| l.split('\t').next().unwrap()).collect();
    // The tiny GPT-2: 2 blocks of 5 points, embed, final_norm, logits.
    assert_eq!(names.len(), 13, "{stdout}");
    assert_eq!(names[0], "embed");
    assert!(names.contains(&"blocks.1.resid_post") && names.contains(&"blocks.0.attn_in"));
    assert_eq!(&names[11..], ["final_norm", "logits"]);
    assert!(stdout.contains("logits\t[seq, 1024]"), "{stdout}");
}

#[test]
fn set_logit_makes_coffee_the_argmax_at_max_plus_ten() {
    let plain = next_json(&["--find", " coffee"]);
    let edited = next_json(&["--find", " coffee", "--set-logit", " coffee=max+10"]);
    let max = plain["top"][0]["logit"].as_f64().unwrap();
    let coffee = &edited["find"][0];
    assert_eq!(edited["top"][0]["id"], coffee["id"], "{edited}");
    assert_eq!(coffee["rank"], 1);
    assert!((coffee["logit"].as_f64().unwrap() - (max + 10.0)).abs() < 1e-4, "{coffee} vs max {max}");
    // The old top token keeps its logit (second now).
    assert_eq!(edited["top"][1]["id"], plain["top"][0]["id"]);
    assert_eq!(edited["top"][1]["logit"], plain["top"][0]["logit"]);
    // --add-logit: the plain top-1 token lowered by 100 drops out of the top.
    let id = plain["top"][0]["id"].as_u64().unwrap().to_string();
    let lowered = next_json(&["--add-logit", &format!("{id}=-100")]);
    assert_ne!(lowered["top"][0]["id"], plain["top"][0]["id"]);
    assert_eq!(lowered["top"][0]["id"], plain["top"][1]["id"]);
}

#[test]
fn capture_writes_the_points_and_steer_reads_a_vector() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("acts.safetensors");
    let out_s = out.to_str().unwrap();
    let (ok, _, stderr) =
        run(kiln().args(["capture", "-m", MODEL, "--point", "blocks.1.resid_post", "--point", "embed", "-o", out_s, PROMPT]));
    assert!(ok, "{stderr}");
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (shape, plain_embed) = read_f32(&st, "embed");
    let seq = shape[0];
    assert_eq!(shape, [seq, 64]);
    assert_eq!(read_f32(&st, "blocks.1.resid_post").0, [seq, 64]);
    assert!(plain_embed.iter().any(|&x| x != 0.0));

    // A steering vector of ones, scaled by 2, at embed: the captured embed moves by 2.
    let vec_path = dir.path().join("vec.safetensors");
    let ones: Vec<u8> = [1.0f32; 64].iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![64], &ones).unwrap();
    safetensors::tensor::serialize_to_file([("v", view)], None, &vec_path).unwrap();
    let steer = format!("embed={}:2", vec_path.display());
    let out2 = dir.path().join("steered.safetensors");
    let (ok, _, stderr) =
        run(kiln().args(["capture", "-m", MODEL, "--point", "embed", "--steer", &steer, "-o", out2.to_str().unwrap(), PROMPT]));
    assert!(ok, "{stderr}");
    let bytes = std::fs::read(&out2).unwrap();
    let steered = read_f32(&safetensors::SafeTensors::deserialize(&bytes).unwrap(), "embed").1;
    for (a, b) in steered.iter().zip(&plain_embed) {
        assert!((a - b - 2.0).abs() < 1e-5, "{a} vs {b} + 2");
    }
    // generate takes --steer too, and a steered run differs from a plain one.
    let gen = |extra: &[&str]| {
        let (ok, stdout, stderr) = run(kiln().args(["generate", "-m", MODEL, "--greedy", "--max-tokens", "6", "--json", PROMPT]).args(extra));
        assert!(ok, "{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()["generated_ids"].clone()
    };
    // (A constant vector would vanish in ln_1: steer along a varied one.)
    let varied_path = dir.path().join("varied.safetensors");
    let varied: Vec<u8> = (0..64).flat_map(|j| ((j % 7) as f32 - 3.0).to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 64], &varied).unwrap();
    safetensors::tensor::serialize_to_file([("blocks.0.resid_post", view)], None, &varied_path).unwrap();
    let big = format!("blocks.0.resid_post={}:20", varied_path.display());
    assert_ne!(gen(&[]), gen(&["--steer", &big]));
}

#[test]
fn bad_points_files_and_values_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.safetensors");
    let out_s = out.to_str().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["capture".into(), "--point".into(), "blocks.2.resid_post".into(), "-o".into(), out_s.into()], "--point"),
        (vec!["capture".into(), "--point".into(), "blocks.0.nope".into(), "-o".into(), out_s.into()], "unknown block point"),
        (vec!["capture".into(), "--point".into(), "embed".into(), "-o".into(), "acts.npy".into()], "must end in .safetensors"),
        (vec!["next".into(), "--set-logit".into(), " coffee=max*2".into()], "--set-logit"),
        (vec!["next".into(), "--set-logit".into(), "#99999=1".into()], "past the model's vocabulary"),
        (vec!["next".into(), "--add-logit".into(), "x=1".into()], "--add-logit"),
        (vec!["next".into(), "--steer".into(), "blocks.0.resid_post=/no/such.safetensors:1".into()], "/no/such.safetensors"),
        (vec!["next".into(), "--steer".into(), "lm_head=/no/such.safetensors:1".into()], "--steer"),
        (vec!["next".into(), "--steer".into(), "embed=v.safetensors".into()], "no :SCALE"),
    ];
    for (args, want) in cases {
        let (ok, _, stderr) = run(kiln().args(&args[..1]).args(["-m", MODEL]).args(&args[1..]).arg(PROMPT));
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
    // A vector of the wrong width.
    let v = dir.path().join("v.safetensors");
    let data: Vec<u8> = [1.0f32; 10].iter().flat_map(|x| x.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![10], &data).unwrap();
    safetensors::tensor::serialize_to_file([("v", view)], None, &v).unwrap();
    let (ok, _, stderr) = run(kiln().args(["next", "-m", MODEL, "--steer", &format!("embed={}:1", v.display()), PROMPT]));
    assert!(!ok && stderr.contains("has 10 values, embed is 64 wide"), "{stderr}");
}
