use super::*;
use JobStatus::*;

#[test]
fn transitions_move_forward_only_and_terminal_is_final() {
    for (from, to) in [
        (Pending, Uploading),
        (Pending, Queued),
        (Uploading, Queued),
        (Queued, Running),
        (Queued, Completed),
        (Running, Completed),
        (Running, Failed),
        (Pending, Cancelled),
        (Running, Running),
    ] {
        assert!(check_transition(from, to).is_ok(), "{from:?} -> {to:?}");
    }
    for (from, to) in [
        (Completed, Running),
        (Completed, Failed),
        (Cancelled, Completed),
        (Failed, Queued),
        (Running, Queued),
        (Queued, Pending),
    ] {
        assert_eq!(
            check_transition(from, to),
            Err(IllegalTransition { from, to }),
            "{from:?} -> {to:?}"
        );
    }
}

#[test]
fn replicate_statuses_map_and_unknown_ones_do_not() {
    assert_eq!(JobStatus::from_replicate("starting"), Some(Queued));
    assert_eq!(JobStatus::from_replicate("processing"), Some(Running));
    assert_eq!(JobStatus::from_replicate("succeeded"), Some(Completed));
    assert_eq!(JobStatus::from_replicate("failed"), Some(Failed));
    assert_eq!(JobStatus::from_replicate("canceled"), Some(Cancelled));
    assert_eq!(JobStatus::from_replicate("aborted"), Some(Cancelled));
    assert_eq!(JobStatus::from_replicate("booting-gpus"), None);
}

#[test]
fn redaction_hides_secret_keys_at_any_depth() {
    let config = json!({
        "--hub_token": "hf_x",
        "model_family": "flux",
        "publishing_config": [{"provider": "s3", "secret_key": "abc", "access_key": "AK", "bucket": "b"}],
        "password": null,
    });
    let r = redact(&config);
    assert_eq!(r["--hub_token"], "***");
    assert_eq!(r["model_family"], "flux");
    assert_eq!(r["publishing_config"][0]["secret_key"], "***");
    assert_eq!(r["publishing_config"][0]["access_key"], "***");
    // What a form sends back unchanged keeps the stored secret.
    let stored = json!({"publishing_config": [{"bucket": "b", "secret_key": "real"}], "--hub_token": "hf_1"});
    let mut sent =
        json!({"publishing_config": [{"bucket": "b2", "secret_key": "***"}], "--hub_token": "***"});
    restore_redacted(&mut sent, Some(&stored));
    assert_eq!(
        sent,
        json!({"publishing_config": [{"bucket": "b2", "secret_key": "real"}], "--hub_token": "hf_1"})
    );
    let mut fresh = json!({"--hub_token": "***"});
    restore_redacted(&mut fresh, None);
    assert_eq!(fresh, json!({}));
    assert_eq!(r["publishing_config"][0]["bucket"], "b");
    assert_eq!(r["password"], Value::Null);
}

#[test]
fn redaction_reaches_into_json_strings_and_restores_them() {
    // SimpleTuner's own form: publishing_config as a JSON string.
    let config = json!({
        "--publishing_config": "[{\"provider\":\"s3\",\"bucket\":\"b\",\"secret_key\":\"S3CRET\",\"access_key\":\"AKIA\"}]",
        "--nested": "{\"x\": {\"api_key\": \"K\"}}",
        "note": "[not json",
        "plain": "{}",
    });
    let r = redact(&config);
    let text = r.to_string();
    for secret in ["S3CRET", "AKIA", "\"K\""] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let entries: Value = serde_json::from_str(r["--publishing_config"].as_str().unwrap()).unwrap();
    assert_eq!(entries[0]["secret_key"], "***");
    assert_eq!(entries[0]["bucket"], "b");
    assert_eq!(r["note"], "[not json");
    assert_eq!(
        r["plain"], "{}",
        "nothing secret: the text is kept as it was"
    );
    assert!(holds_secrets(&config));
    assert!(!holds_secrets(&r["plain"]));
    // Sent back as shown: the stored secrets come back, inside the string.
    let mut sent = r.clone();
    sent["--publishing_config"] = json!(entries.to_string().replace("\"b\"", "\"b2\""));
    restore_redacted(&mut sent, Some(&config));
    let back: Value = serde_json::from_str(sent["--publishing_config"].as_str().unwrap()).unwrap();
    assert_eq!(back[0]["secret_key"], "S3CRET");
    assert_eq!(back[0]["access_key"], "AKIA");
    assert_eq!(back[0]["bucket"], "b2");
    // With nothing stored, "***" is dropped, never kept as a secret.
    let mut fresh = json!({"p": "[{\"secret_key\": \"***\", \"bucket\": \"b\"}]"});
    restore_redacted(&mut fresh, None);
    assert_eq!(
        serde_json::from_str::<Value>(fresh["p"].as_str().unwrap()).unwrap(),
        json!([{"bucket": "b"}])
    );
}
