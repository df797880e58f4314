//! Tokenizers built from GGUF metadata.
//!
//! - Synthetic specs: byte-level BPE with merges, control / user-defined tokens, BOS/EOS,
//!   each pre-tokenizer, and one test per error.
//! - A synthetic GGUF file through `from_gguf`.
//! - The real models (Qwen2.5-Coder-0.5B Q4_K_M, SmolLM2-135M Q4_1) from the kiln cache,
//!   against goldens written by transformers 5's own GGUF conversion
//!   (tests/fixtures/make_gguf_goldens.py), id for id, BOS/EOS included. Skipped with a
//!   note when the files are not cached (`python3 tests/fixtures/fetch_models.py` or
//!   `kiln fetch`), failed instead when KILN_REQUIRE_MODELS=1.

#[path = "common/gguf_writer.rs"]
mod gguf_writer;

use std::path::PathBuf;

use gguf_writer::GgufBuilder;
use kiln_model::fetch;
use kiln_model::gguf::tokenizer::{build, from_gguf, token_type, GgufTokenizerSpec};
use kiln_model::gguf::{GgufArray, GgufFile, GgufValue};
use kiln_model::Tokenizer;
use serde_json::Value;

// ---------------------------------------------------------------------------------
// Synthetic specs
// ---------------------------------------------------------------------------------

/// GPT-2's byte -> printable char table, indexed by byte.
fn byte_chars() -> Vec<char> {
    let mut table = vec![' '; 256];
    for (b, c) in kiln_model::tokenizer::bytes_to_unicode() {
        table[b as usize] = c;
    }
    table
}

fn bl(s: &str) -> String {
    let t = byte_chars();
    s.bytes().map(|b| t[b as usize]).collect()
}

const MERGES: &[(&str, &str)] = &[
    ("h", "e"),
    ("l", "l"),
    ("he", "ll"),
    ("hell", "o"),
    ("Ġ", "w"),
    ("Ġw", "o"),
    ("Ġwo", "r"),
    ("Ġwor", "l"),
    ("Ġworl", "d"),
    ("1", "2"),
    ("12", "3"),
    ("Ã", "©"),
];

/// 256 byte tokens, the merge results, then `<|endoftext|>` (control), `<|im_start|>`,
/// `<|im_end|>` (control), `<tool>` (user-defined), `[PAD]` (unused).
fn spec() -> GgufTokenizerSpec {
    let mut tokens: Vec<String> = byte_chars().into_iter().map(String::from).collect();
    let mut merges = Vec::new();
    for (a, b) in MERGES {
        merges.push(format!("{a} {b}"));
        tokens.push(format!("{a}{b}"));
    }
    let mut types = vec![token_type::NORMAL; tokens.len()];
    for (t, ty) in [
        ("<|endoftext|>", token_type::CONTROL),
        ("<|im_start|>", token_type::CONTROL),
        ("<|im_end|>", token_type::CONTROL),
        ("<tool>", token_type::USER_DEFINED),
        ("[PAD]", token_type::UNUSED),
    ] {
        tokens.push(t.to_string());
        types.push(ty);
    }
    GgufTokenizerSpec {
        model: "gpt2".into(),
        pre: Some("gpt2".into()),
        tokens,
        merges,
        token_types: types,
        bos: Some(id_of_static("<|im_start|>")),
        eos: Some(id_of_static("<|im_end|>")),
        pad: Some(id_of_static("<|endoftext|>")),
        add_bos: Some(false),
        add_eos: Some(false),
        source: PathBuf::from("synthetic.gguf"),
        ..Default::default()
    }
}

fn id_of_static(tok: &str) -> u32 {
    let base = 256 + MERGES.len() as u32;
    match tok {
        "<|endoftext|>" => base,
        "<|im_start|>" => base + 1,
        "<|im_end|>" => base + 2,
        "<tool>" => base + 3,
        "[PAD]" => base + 4,
        _ => panic!("{tok}"),
    }
}

fn id(t: &Tokenizer, tok: &str) -> u32 {
    t.token_to_id(tok).unwrap_or_else(|| panic!("no token {tok:?}"))
}

fn err_of(spec: &GgufTokenizerSpec) -> String {
    match build(spec) {
        Ok(t) => panic!("expected an error, got {t:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn synthetic_encode_decode_and_added_tokens() {
    let t = build(&spec()).unwrap();
    assert_eq!(t.vocab_size(), 256 + MERGES.len() + 5);
    let ids = t.encode("hello world").unwrap();
    assert_eq!(ids, vec![id(&t, "hello"), id(&t, "Ġworld")]);
    assert_eq!(t.decode(&ids, false).unwrap(), "hello world");
    assert_eq!(t.token_bytes(id(&t, "Ġworld")).unwrap(), b" world");

    // Control tokens: matched in text, special, dropped by skip_special.
    let text = "<|im_start|>hello<|im_end|><|endoftext|>";
    let ids = t.encode(text).unwrap();
    assert_eq!(
        ids,
        vec![id_of_static("<|im_start|>"), id(&t, "hello"), id_of_static("<|im_end|>"), id_of_static("<|endoftext|>")]
    );
    assert!(t.is_special(id_of_static("<|im_end|>")));
    assert_eq!(t.decode(&ids, false).unwrap(), text);
    assert_eq!(t.decode(&ids, true).unwrap(), "hello");

    // User-defined tokens: matched, not special, kept by skip_special.
    let ids = t.encode("<tool>hello").unwrap();
    assert_eq!(ids, vec![id_of_static("<tool>"), id(&t, "hello")]);
    assert!(!t.is_special(id_of_static("<tool>")));
    assert_eq!(t.decode(&ids, true).unwrap(), "<tool>hello");

    // Unused tokens are plain vocabulary: not matched in text, decodable.
    let ids = t.encode("[PAD]").unwrap();
    assert_eq!(ids.len(), 5);
    assert_eq!(t.decode(&[id_of_static("[PAD]")], false).unwrap(), "[PAD]");

    // Any text round-trips through byte-level BPE.
    for text in ["héllo wörld, 😀 ok\n\ttabs", "  \r\n x", ""] {
        let ids = t.encode(text).unwrap();
        assert_eq!(t.decode(&ids, false).unwrap(), text);
        let mut s = t.stream(false);
        let mut out = String::new();
        for &i in &ids {
            out.push_str(&s.push(i).unwrap());
        }
        out.push_str(&s.finish().unwrap());
        assert_eq!(out, text);
    }

    // eos: the eos id, then control tokens named like end-of-turn tokens.
    assert_eq!(t.eos_ids(), &[id_of_static("<|im_end|>"), id_of_static("<|endoftext|>")]);
    assert!(t.path().ends_with("synthetic.gguf"));
}

#[test]
fn synthetic_bos_eos_follow_add_bos_add_eos() {
    let t = build(&spec()).unwrap();
    let plain = t.encode("hello").unwrap();
    assert_eq!(t.encode_with_special("hello", true).unwrap(), plain);

    let bos = id_of_static("<|im_start|>");
    let eos = id_of_static("<|im_end|>");
    let t = build(&GgufTokenizerSpec { add_bos: Some(true), ..spec() }).unwrap();
    assert_eq!(t.encode("hello").unwrap(), plain);
    assert_eq!(t.encode_with_special("hello", true).unwrap(), [vec![bos], plain.clone()].concat());
    assert_eq!(t.encode_with_special("", true).unwrap(), vec![bos]);

    let t = build(&GgufTokenizerSpec { add_bos: Some(true), add_eos: Some(true), ..spec() }).unwrap();
    assert_eq!(t.encode_with_special("hello", true).unwrap(), [vec![bos], plain.clone(), vec![eos]].concat());

    // Llama 3's pre-tokenizer adds BOS by default (as llama.cpp).
    let t = build(&GgufTokenizerSpec { pre: Some("llama-bpe".into()), add_bos: None, ..spec() }).unwrap();
    assert_eq!(t.encode_with_special("hello", true).unwrap(), [vec![bos], plain.clone()].concat());
    let t = build(&GgufTokenizerSpec { pre: Some("qwen2".into()), add_bos: None, ..spec() }).unwrap();
    assert_eq!(t.encode_with_special("hello", true).unwrap(), plain);
}

#[test]
fn synthetic_pre_tokenizers() {
    let by_pre = |pre: Option<&str>| build(&GgufTokenizerSpec { pre: pre.map(String::from), ..spec() }).unwrap();
    // GPT-2 keeps digit runs together (so the "123" merge applies); Qwen2 and SmolLM split
    // digits one by one, Llama 3 in groups of up to three.
    for pre in [None, Some("default"), Some("gpt2")] {
        let t = by_pre(pre);
        assert_eq!(t.encode("123").unwrap(), vec![id(&t, "123")], "{pre:?}");
    }
    for pre in ["qwen2", "smollm", "starcoder"] {
        let t = by_pre(Some(pre));
        assert_eq!(t.encode("123").unwrap().len(), 3, "{pre}");
        assert_eq!(t.decode(&t.encode("123 x").unwrap(), false).unwrap(), "123 x");
    }
    let t = by_pre(Some("llama-bpe"));
    assert_eq!(t.encode("123").unwrap(), vec![id(&t, "123")]);
    assert_eq!(t.encode("12312").unwrap(), vec![id(&t, "123"), id(&t, "12")]);

    // No normalizer, as llama.cpp (Qwen2's own tokenizer.json would apply NFC): a
    // decomposed é stays two characters.
    for pre in ["qwen2", "gpt2", "smollm", "llama-bpe"] {
        let t = by_pre(Some(pre));
        assert_eq!(t.encode("é").unwrap(), vec![id(&t, &bl("é"))], "{pre}");
        assert_ne!(t.encode("e\u{301}").unwrap(), t.encode("é").unwrap(), "{pre}");
        assert_eq!(t.decode(&t.encode("e\u{301}").unwrap(), false).unwrap(), "e\u{301}", "{pre}");
    }

    // Qwen2's split: a letter run takes one preceding non-letter; "'S" is one piece.
    let t = by_pre(Some("qwen2"));
    let pieces = |t: &Tokenizer, s: &str| {
        t.inner()
            .get_pre_tokenizer()
            .map(|p| {
                use tokenizers::PreTokenizer;
                let mut pts = tokenizers::PreTokenizedString::from(s);
                p.pre_tokenize(&mut pts).unwrap();
                pts.get_splits(tokenizers::OffsetReferential::Original, tokenizers::OffsetType::Byte)
                    .into_iter()
                    .map(|(s, _, _)| s.to_string())
                    .collect::<Vec<_>>()
            })
            .unwrap()
    };
    assert_eq!(pieces(&t, "I'S x1"), vec!["I", "'S", "Ġx", "1"]);
    let t = by_pre(Some("gpt2"));
    assert_eq!(pieces(&t, "I'S x1"), vec!["I", "'", "S", "Ġx", "1"]);
}

#[test]
fn synthetic_errors_name_the_key() {
    let e = err_of(&GgufTokenizerSpec { model: "llama".into(), ..spec() });
    assert!(e.contains("tokenizer.ggml.model") && e.contains("SentencePiece") && e.contains("gpt2"), "{e}");
    assert!(e.contains("synthetic.gguf"), "{e}");
    let e = err_of(&GgufTokenizerSpec { model: "bert".into(), ..spec() });
    assert!(e.contains("`bert`"), "{e}");

    let e = err_of(&GgufTokenizerSpec { pre: Some("chatglm-bpe".into()), ..spec() });
    assert!(e.contains("tokenizer.ggml.pre") && e.contains("chatglm-bpe") && e.contains("qwen2"), "{e}");

    let mut s = spec();
    s.token_types.pop();
    let e = err_of(&s);
    assert!(e.contains("tokenizer.ggml.token_type") && e.contains("entries"), "{e}");

    let e = err_of(&GgufTokenizerSpec { eos: Some(100_000), ..spec() });
    assert!(e.contains("tokenizer.ggml.eos_token_id") && e.contains("100000"), "{e}");

    let mut s = spec();
    s.merges.push("nospace".into());
    let e = err_of(&s);
    assert!(e.contains("tokenizer.ggml.merges") && e.contains("nospace"), "{e}");

    let mut s = spec();
    s.merges.push("zz qq".into());
    let e = err_of(&s);
    assert!(e.contains("tokenizer.ggml.merges"), "{e}");

    let e =
        err_of(&GgufTokenizerSpec { tokens: vec![], token_types: vec![], bos: None, eos: None, pad: None, ..spec() });
    assert!(e.contains("tokenizer.ggml.tokens") && e.contains("empty"), "{e}");

    let e = err_of(&GgufTokenizerSpec { add_bos: Some(true), bos: None, ..spec() });
    assert!(e.contains("tokenizer.ggml.add_bos_token"), "{e}");

    let e = err_of(&GgufTokenizerSpec { add_eos: Some(true), eos: None, ..spec() });
    assert!(e.contains("tokenizer.ggml.add_eos_token"), "{e}");
}

// ---------------------------------------------------------------------------------
// A synthetic GGUF file
// ---------------------------------------------------------------------------------

#[test]
fn from_gguf_reads_the_metadata() {
    let s = spec();
    let b = GgufBuilder::new(3)
        .kv("general.architecture", GgufValue::String("qwen2".into()))
        .kv("tokenizer.ggml.model", GgufValue::String("gpt2".into()))
        .kv("tokenizer.ggml.pre", GgufValue::String("qwen2".into()))
        .kv("tokenizer.ggml.tokens", GgufValue::Array(GgufArray::String(s.tokens.clone())))
        .kv("tokenizer.ggml.merges", GgufValue::Array(GgufArray::String(s.merges.clone())))
        .kv("tokenizer.ggml.token_type", GgufValue::Array(GgufArray::I32(s.token_types.clone())))
        .kv("tokenizer.ggml.bos_token_id", GgufValue::U32(s.bos.unwrap()))
        .kv("tokenizer.ggml.eos_token_id", GgufValue::U32(s.eos.unwrap()))
        .kv("tokenizer.ggml.padding_token_id", GgufValue::U32(s.pad.unwrap()))
        .kv("tokenizer.ggml.add_bos_token", GgufValue::Bool(true));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tok.gguf");
    b.build().write(&path);
    let f = GgufFile::open(&path).unwrap();
    let got = GgufTokenizerSpec::from_gguf(&f).unwrap();
    assert_eq!(got.tokens, s.tokens);
    assert_eq!(got.merges, s.merges);
    assert_eq!(got.token_types, s.token_types);
    assert_eq!((got.bos, got.eos, got.pad, got.add_bos, got.add_eos), (s.bos, s.eos, s.pad, Some(true), None));
    assert_eq!(got.pre.as_deref(), Some("qwen2"));
    let t = from_gguf(&f).unwrap();
    assert_eq!(t.path(), path.as_path());
    assert_eq!(t.encode_with_special("hello", true).unwrap(), vec![s.bos.unwrap(), t.token_to_id("hello").unwrap()]);

    // A SentencePiece GGUF is refused before its vocabulary is read.
    let b = GgufBuilder::new(3).kv("tokenizer.ggml.model", GgufValue::String("llama".into()));
    let path = dir.path().join("spm.gguf");
    b.build().write(&path);
    let e = from_gguf(&GgufFile::open(&path).unwrap()).unwrap_err().to_string();
    assert!(e.contains("SentencePiece") && e.contains("spm.gguf"), "{e}");
}

// ---------------------------------------------------------------------------------
// Real models against transformers' goldens
// ---------------------------------------------------------------------------------

fn golden(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/goldens")
        .join(format!("gguf_tokenizer_{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

/// The cached model file, or `None` (with a note) when it is not there.
fn model_file(name: &str) -> Option<PathBuf> {
    match fetch::cached(name, None).unwrap() {
        Some(p) => Some(p),
        None => {
            let m = fetch::find_model(name).unwrap();
            let path = fetch::model_path(m, None);
            if std::env::var("KILN_REQUIRE_MODELS").as_deref() == Ok("1") {
                panic!(
                    "KILN_REQUIRE_MODELS=1 but {} is missing (run `python3 tests/fixtures/fetch_models.py`)",
                    path.display()
                );
            }
            eprintln!("note: skipping, {} is not cached (python3 tests/fixtures/fetch_models.py)", path.display());
            None
        }
    }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn load(name: &str) -> Option<(GgufTokenizerSpec, Tokenizer)> {
    let path = model_file(name)?;
    let f = GgufFile::open(&path).unwrap();
    let spec = GgufTokenizerSpec::from_gguf(&f).unwrap();
    let t = build(&spec).unwrap();
    Some((spec, t))
}

fn streamed(t: &Tokenizer, ids: &[u32], skip: bool) -> String {
    let mut s = t.stream(skip);
    let mut out = String::new();
    for &i in ids {
        out.push_str(&s.push(i).unwrap());
    }
    out.push_str(&s.finish().unwrap());
    out
}

/// Every case of transformers 5's golden, id for id, with and without special tokens;
/// tokens, decoding (also streamed), the chat renderings' ids, the added tokens and the
/// bos/eos ids. Returns the spec and tokenizer for model-specific checks.
fn check_against_transformers(model: &str, golden_name: &str) -> Option<(GgufTokenizerSpec, Tokenizer)> {
    let (spec, t) = load(model)?;
    let g = golden(golden_name);
    assert_eq!(
        g["versions"]["transformers"].as_str().unwrap().split('.').next(),
        Some("5"),
        "golden from transformers 5"
    );
    // The script's own GGUF-metadata layout (llama.cpp's reading) agrees with transformers
    // on every string, so kiln matching one is matching both.
    assert_eq!(g["gguf_layout_differs_for"].as_array().unwrap().len(), 0, "{model}: transformers vs llama.cpp layout");
    assert_eq!(t.vocab_size() as u64, g["len_tokenizer"].as_u64().unwrap());
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c["ids"]);
        assert_eq!(t.encode(text).unwrap(), want, "{model}: ids of {text:?}");
        assert_eq!(
            t.encode_with_special(text, true).unwrap(),
            ids(&c["ids_add_special_tokens"]),
            "{model}: ids with special tokens of {text:?}"
        );
        let tokens: Vec<String> = want.iter().map(|&i| t.id_to_token(i).unwrap()).collect();
        let gt: Vec<&str> = c["tokens"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        assert_eq!(tokens, gt, "{model}: tokens of {text:?}");
        assert_eq!(t.decode(&want, false).unwrap(), c["decoded"].as_str().unwrap(), "{model}: decode of {text:?}");
        assert_eq!(
            t.decode(&want, true).unwrap(),
            c["decoded_skip_special"].as_str().unwrap(),
            "{model}: decode(skip) of {text:?}"
        );
        assert_eq!(streamed(&t, &want, false), c["decoded"].as_str().unwrap(), "{model}: streamed {text:?}");
    }
    for (k, v) in g["chat_template"].as_object().unwrap() {
        let text = v["text"].as_str().unwrap();
        assert_eq!(t.encode(text).unwrap(), ids(&v["ids"]), "{model}: chat {k}");
        assert_eq!(
            t.encode_with_special(text, true).unwrap(),
            ids(&v["ids_of_tokenize_text_add_special_tokens"]),
            "{model}: chat {k}"
        );
    }
    // The same added tokens, special where transformers has them special.
    let added = g["backend"]["added_tokens"].as_array().unwrap();
    assert_eq!(t.inner().get_added_tokens_decoder().len(), added.len(), "{model}: number of added tokens");
    for at in added {
        let (id, content, special) =
            (at[0].as_u64().unwrap() as u32, at[1].as_str().unwrap(), at[2].as_bool().unwrap());
        assert_eq!(t.token_to_id(content), Some(id));
        assert_eq!(t.is_special(id), special, "{content}");
    }
    let special_id = |name: &str| g["special_tokens"][name][1].as_u64().map(|i| i as u32);
    assert_eq!((spec.bos, spec.eos), (special_id("bos_token"), special_id("eos_token")), "{model}: bos/eos");
    Some((spec, t))
}

#[test]
fn qwen_matches_transformers() {
    let Some((spec, t)) = check_against_transformers("qwen2.5-coder-0.5b", "qwen2.5") else { return };
    assert_eq!((spec.bos, spec.eos, spec.pad, spec.add_bos), (Some(151643), Some(151645), Some(151643), Some(false)));
    assert_eq!(t.eos_ids(), &[151645, 151643]);
    assert_eq!(t.vocab_size(), 151936);
    // FIM and tool-call tokens are single tokens; FIM's are special, tool calls' are not.
    assert_eq!(t.encode("<|fim_prefix|>").unwrap(), vec![151659]);
    assert!(t.is_special(151659));
    assert_eq!(t.encode("<tool_call>").unwrap(), vec![151657]);
    assert!(!t.is_special(151657));
    assert_eq!(t.token_bytes(t.encode(" world").unwrap()[0]).unwrap(), b" world");
}

#[test]
fn smollm2_matches_transformers() {
    let Some((spec, t)) = check_against_transformers("smollm2-135m", "smollm2") else { return };
    assert_eq!((spec.bos, spec.eos, spec.add_bos), (Some(1), Some(2), Some(false)));
    assert_eq!(spec.pre.as_deref(), Some("smollm"));
    assert_eq!(t.eos_ids(), &[2, 0]);
    assert_eq!(t.vocab_size(), 49152);
    // add_bos_token is false: no `<|im_start|>` (id 1) before the text.
    let plain = t.encode("The capital of France is").unwrap();
    assert_eq!(plain, vec![504, 3575, 282, 4649, 314]);
    assert_eq!(t.encode_with_special("The capital of France is", true).unwrap(), plain);
    assert_eq!(t.encode_with_special("", true).unwrap(), Vec::<u32>::new());
}

/// Downloads the real models (network, ~600 MB): `cargo test -p kiln-model --test
/// gguf_tokenizer -- --ignored fetch_real_models`.
#[test]
#[ignore]
fn fetch_real_models() {
    for m in fetch::known_models() {
        let p = fetch::fetch(m.name, None).unwrap();
        println!("{} -> {}", m.name, p.display());
    }
}
