//! Chat templates rendered with MiniJinja against transformers' `apply_chat_template(..,
//! tokenize=False)`: the real templates of the cached GGUF models (goldens from
//! tests/fixtures/make_gguf_goldens.py, plus multi-turn renderings taken from transformers
//! 5.24.0 with jinja2 3.1.6), a synthetic template exercising what transformers' Jinja
//! environment provides, and errors.

use std::path::PathBuf;

use kiln_model::fetch;
use kiln_model::gguf::chat::{chat_template, render_chat, ChatMessage, ChatTemplate};
use kiln_model::gguf::tokenizer::{build, GgufTokenizerSpec};
use kiln_model::gguf::GgufFile;
use serde_json::Value;

fn golden(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/goldens")
        .join(format!("gguf_tokenizer_{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn model_file(name: &str) -> Option<PathBuf> {
    if let Some(p) = fetch::cached(name, None).unwrap() {
        return Some(p);
    }
    let path = fetch::model_path(fetch::find_model(name).unwrap(), None);
    if std::env::var("KILN_REQUIRE_MODELS").as_deref() == Ok("1") {
        panic!(
            "KILN_REQUIRE_MODELS=1 but {} is missing (run `python3 tests/fixtures/fetch_models.py`)",
            path.display()
        );
    }
    eprintln!("note: skipping, {} is not cached (python3 tests/fixtures/fetch_models.py)", path.display());
    None
}

fn messages(v: &Value) -> Vec<ChatMessage> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("You are terse."),
        ChatMessage::user("Hi!"),
        ChatMessage::assistant("Hello. How can I help?"),
        ChatMessage::user("Say 'ok'.\n  Indented line\n"),
    ]
}

/// Rendered by transformers for [`conversation`] (both models' templates agree here).
const CONVERSATION: &str = "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello. How can I help?<|im_end|>\n<|im_start|>user\nSay 'ok'.\n  Indented line\n<|im_end|>\n";

fn check_real(model: &str, golden_name: &str, default_system: &str) {
    let Some(path) = model_file(model) else { return };
    let f = GgufFile::open(&path).unwrap();
    let template = chat_template(&f).unwrap().expect("the model has a chat template");
    let spec = GgufTokenizerSpec::from_gguf(&f).unwrap();
    let bos = &spec.tokens[spec.bos.unwrap() as usize];
    let eos = &spec.tokens[spec.eos.unwrap() as usize];
    let tok = build(&spec).unwrap();
    let g = golden(golden_name);
    let ct = ChatTemplate::new(template).unwrap();
    for (k, case) in g["chat_template"].as_object().unwrap() {
        let msgs = messages(&case["messages"]);
        let agp = case["add_generation_prompt"].as_bool().unwrap();
        let want = case["text"].as_str().unwrap();
        let got = render_chat(template, &msgs, agp, bos, eos).unwrap();
        assert_eq!(got, want, "{model}: {k}");
        assert_eq!(ct.render(&msgs, agp, bos, eos).unwrap(), want);
        let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        assert_eq!(tok.encode(&got).unwrap(), ids, "{model}: ids of {k}");
    }

    let conv = conversation();
    assert_eq!(ct.render(&conv, false, bos, eos).unwrap(), CONVERSATION, "{model}");
    let with_prompt = format!("{CONVERSATION}<|im_start|>assistant\n");
    assert_eq!(ct.render(&conv, true, bos, eos).unwrap(), with_prompt, "{model}");
    let no_system = format!(
        "<|im_start|>system\n{default_system}<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\nHello. How can I help?<|im_end|>\n"
    );
    assert_eq!(ct.render(&conv[1..3], false, bos, eos).unwrap(), no_system, "{model}");
}

#[test]
fn qwen_template_matches_transformers() {
    check_real("qwen2.5-coder-0.5b", "qwen2.5", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
}

#[test]
fn smollm2_template_matches_transformers() {
    check_real("smollm2-135m", "smollm2", "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
}

/// Loop controls, namespaces, Python string methods, raise_exception, trim/lstrip blocks,
/// transformers' tojson and `tools`/`documents` as none.
const SYNTHETIC: &str = r#"{{- bos_token }}
{%- set ns = namespace(sys='') %}
{%- for m in messages %}
    {%- if m.role == 'system' %}{% set ns.sys = m.content.strip() %}{% continue %}{% endif %}
    {%- if m.content.startswith('!') %}{{ raise_exception('no bangs: ' + m.content) }}{% endif %}
{% if loop.first %}[{{ ns.sys | upper }}]
{% endif %}
    <{{ m['role'] }}> {{ m.content | trim }}{{ eos_token if m.role == 'assistant' }}
    {% if m.content.split(' ') | length > 3 %}(long){% endif %}
{% endfor %}
{% if add_generation_prompt %}<assistant>{% endif %}
{{ {'a': 1, 'b': [1, 2.5, 'x"y', none, true], 'c': 'é<>&\n'} | tojson }}
{{ ['x', 1e20, 0.0001, 1e-05] | tojson(indent=2) }}
{{ tools is none }}|{{ documents is none }}
"#;

/// jinja2 3.1.6 in transformers 5.24.0's chat-template environment
/// (`render_jinja_template`), on the same input.
const SYNTHETIC_OUT: &str = "<s>    <user> Hello there, how are you?\n(long)    <assistant> Fine.</s>\n    <user> ok\n<assistant>{\"a\": 1, \"b\": [1, 2.5, \"x\\\"y\", null, true], \"c\": \"é<>&\\n\"}\n[\n  \"x\",\n  1e+20,\n  0.0001,\n  1e-05\n]\nTrue|True";

#[test]
fn synthetic_template_matches_jinja2() {
    let msgs = vec![
        ChatMessage::system("  Be brief.  "),
        ChatMessage::user("Hello there, how are you?"),
        ChatMessage::assistant(" Fine. "),
        ChatMessage::user("ok"),
    ];
    assert_eq!(render_chat(SYNTHETIC, &msgs, true, "<s>", "</s>").unwrap(), SYNTHETIC_OUT);
}

#[test]
fn chatml_template_with_and_without_generation_prompt() {
    let t = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    let msgs = [ChatMessage::user("2+2?")];
    assert_eq!(render_chat(t, &msgs, false, "", "").unwrap(), "<|im_start|>user\n2+2?<|im_end|>\n");
    assert_eq!(
        render_chat(t, &msgs, true, "", "").unwrap(),
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(render_chat(t, &[], true, "", "").unwrap(), "<|im_start|>assistant\n");
}

#[test]
fn template_errors_are_clear() {
    // Syntax error: names the template and the line.
    let e = ChatTemplate::new("line one\n{% for m in messages %}{{ m.content }}\n").unwrap_err().to_string();
    assert!(e.contains("syntax error") && e.contains("chat_template:2"), "{e}");
    assert!(e.contains("{% for m in messages %}"), "the source line is shown: {e}");

    // raise_exception: the template's own message.
    let e = render_chat(SYNTHETIC, &[ChatMessage::user("!boom")], false, "", "").unwrap_err().to_string();
    assert!(e.contains("raised an exception: no bangs: !boom (line 5)"), "{e}");
    assert!(!e.contains('\n'), "no source dump for the template's own message: {e}");

    // Unknown filter / function.
    let e = ChatTemplate::new("{{ messages | nosuchfilter }}").and_then(|t| t.render(&[], false, "", ""));
    let e = e.unwrap_err().to_string();
    assert!(e.contains("nosuchfilter"), "{e}");
}

#[test]
fn strftime_now_renders_a_date() {
    let out = render_chat("{{ strftime_now('%d %b %Y') }}", &[], false, "", "").unwrap();
    let parts: Vec<&str> = out.split(' ').collect();
    assert_eq!(parts.len(), 3, "{out}");
    assert_eq!(parts[0].len(), 2);
    assert_eq!(parts[1].len(), 3);
    assert!(parts[2].parse::<u32>().unwrap() >= 2024);
}
