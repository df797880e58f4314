//! tokenizer.json loading, encode/decode, token text and streaming detokenisation.

mod common;

use common::*;
use kiln_model::{escape_invalid_utf8, ModelError, Tokenizer};

fn tokenizer() -> (tempfile::TempDir, Tokenizer) {
    let dir = tempdir();
    write_json(dir.path(), "tokenizer.json", &tokenizer_json(None));
    let t = Tokenizer::from_dir(dir.path()).unwrap();
    (dir, t)
}

#[test]
fn encode_decode_round_trip_without_special_tokens() {
    let (_d, t) = tokenizer();
    let ids = t.encode("hello world").unwrap();
    assert_eq!(ids, vec![merged_id("hello"), merged_id("Ġworld")]);
    assert_eq!(t.decode(&ids, false).unwrap(), "hello world");
    assert_eq!(t.vocab_size(), 256 + MERGED.len() + 2);

    // Bytes outside the merges fall back to single byte tokens; any text round-trips.
    let text = "héllo wörld, 😀 ok\n\ttabs";
    let ids = t.encode(text).unwrap();
    assert_eq!(t.decode(&ids, false).unwrap(), text);

    // A special token written in the text is recognised; skip_special drops it on decode.
    let ids = t.encode("hello<|endoftext|>").unwrap();
    assert_eq!(ids, vec![merged_id("hello"), ENDOFTEXT]);
    assert!(t.is_special(ENDOFTEXT) && !t.is_special(merged_id("hello")));
    assert_eq!(t.decode(&ids, true).unwrap(), "hello");
    assert_eq!(t.decode(&ids, false).unwrap(), "hello<|endoftext|>");
}

#[test]
fn encode_adds_no_bos_unless_asked() {
    let dir = tempdir();
    write_json(dir.path(), "tokenizer.json", &tokenizer_json(Some(bos_template())));
    let t = Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(t.encode("hello").unwrap(), vec![merged_id("hello")]);
    assert_eq!(t.encode_with_special("hello", true).unwrap(), vec![BOS, merged_id("hello")]);
}

#[test]
fn token_text_and_lookup() {
    let (_d, t) = tokenizer();
    assert_eq!(t.token_to_id("Ġworld"), Some(merged_id("Ġworld")));
    assert_eq!(t.id_to_token(merged_id("Ġworld")).as_deref(), Some("Ġworld"));
    assert_eq!(t.token_text(merged_id("Ġworld")), " world");
    assert_eq!(t.token_text(ENDOFTEXT), "<|endoftext|>");
    // "é" is two byte tokens; each alone is half a character and shows as an escape.
    let ids = t.encode("é").unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(t.token_text(ids[0]), "\\xC3");
    assert_eq!(t.token_text(ids[1]), "\\xA9");
    assert_eq!(t.token_bytes(ids[0]), Some(vec![0xC3]));
    assert_eq!(t.token_text(99_999), "<unk:99999>");
    assert_eq!(escape_invalid_utf8(b"ok\xF0\x9F"), "ok\\xF0\\x9F");
}

#[test]
fn eos_ids_fallback_and_override() {
    let (_d, mut t) = tokenizer();
    assert_eq!(t.eos_ids(), &[ENDOFTEXT], "falls back to <|endoftext|>");
    t.set_eos_ids(&[7, 8]);
    assert_eq!(t.eos_ids(), &[7, 8]);
    assert!(t.is_eos(8) && !t.is_eos(ENDOFTEXT));
    t.set_eos_ids(&[]);
    assert_eq!(t.eos_ids(), &[7, 8], "empty list keeps the current ids");
}

#[test]
fn stream_decoder_never_splits_a_character() {
    let (_d, t) = tokenizer();
    let text = "hello wörld 😀é!<|endoftext|> hello";
    let ids = t.encode(text).unwrap();
    let mut s = t.stream(false);
    let mut pieces = Vec::new();
    for &id in &ids {
        let piece = s.push(id).unwrap();
        assert!(!piece.contains('\u{FFFD}'), "piece {piece:?} holds a broken character");
        pieces.push(piece);
    }
    pieces.push(s.finish().unwrap());
    assert_eq!(pieces.concat(), text);
    assert_eq!(s.ids(), &ids[..]);

    // The 4 byte tokens of the emoji give nothing, nothing, nothing, then the whole emoji.
    let emoji = t.encode("😀").unwrap();
    assert_eq!(emoji.len(), 4);
    let mut s = t.stream(false);
    let out: Vec<String> = emoji.iter().map(|&id| s.push(id).unwrap()).collect();
    assert_eq!(out, vec!["", "", "", "😀"]);

    // Skipping special tokens while streaming.
    let mut s = t.stream(true);
    let got: String = t.encode("hello<|endoftext|> world").unwrap().iter().map(|&id| s.push(id).unwrap()).collect();
    assert_eq!(got + &s.finish().unwrap(), "hello world");
}

#[test]
fn stream_finish_flushes_an_incomplete_character() {
    let (_d, t) = tokenizer();
    let emoji = t.encode("😀").unwrap();
    let mut s = t.stream(false);
    assert_eq!(s.push(merged_id("hello")).unwrap(), "hello");
    assert_eq!(s.push(emoji[0]).unwrap(), "");
    assert_eq!(s.push(emoji[1]).unwrap(), "");
    assert_eq!(s.finish().unwrap(), "\u{FFFD}");
    assert_eq!(s.finish().unwrap(), "", "nothing left after finish");
}

#[test]
fn out_of_range_ids_are_errors_not_panics() {
    let (_d, t) = tokenizer();
    let msg = t.decode(&[1, 50_000], false).unwrap_err().to_string();
    assert_mentions(&msg, &["tokenizer.json", "50000", "out of range"]);
    let mut s = t.stream(false);
    assert!(s.push(1_000_000).is_err());
}

#[test]
fn missing_and_malformed_tokenizer_name_the_file() {
    let dir = tempdir();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, ModelError::MissingFile { .. }));
    assert_mentions(&err.to_string(), &["tokenizer.json", "does not exist"]);

    std::fs::write(dir.path().join("tokenizer.json"), "{\"model\": {\"type\": \"BPE\"").unwrap();
    let msg = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert_mentions(&msg, &["tokenizer.json", "not a tokenizer.json"]);

    std::fs::write(dir.path().join("tokenizer.json"), "{\"model\": {\"type\": \"Nope\"}}").unwrap();
    let msg = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert_mentions(&msg, &["tokenizer.json"]);
}
