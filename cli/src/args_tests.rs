//! The parsers of the command line's values: images in Docker's syntax, env vars,
//! instants and URLs.

use super::*;

#[test]
fn images_are_read_in_dockers_syntax() {
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let cases = [
        (
            "a plain reference",
            "registry.example.com/team/app:1.0.0".to_owned(),
            "registry.example.com/team/app:1.0.0".to_owned(),
        ),
        (
            "a registry with a port",
            "localhost:5000/app:v2".to_owned(),
            "localhost:5000/app:v2".to_owned(),
        ),
        (
            "Docker Hub, as docker writes it",
            "nginx:latest".to_owned(),
            "docker.io/library/nginx:latest".to_owned(),
        ),
        (
            "no tag means latest",
            "ghcr.io/org/app".to_owned(),
            "ghcr.io/org/app:latest".to_owned(),
        ),
        (
            "a tag pinned to a digest",
            format!("ghcr.io/org/app:1.0@{digest}"),
            format!("ghcr.io/org/app:1.0@{digest}"),
        ),
    ];
    for (description, input, expected) in cases {
        let parsed = parse_image(&input).map(|i| i.to_string());
        assert_eq!(parsed, Ok(expected), "{description}");
    }
}

#[test]
fn malformed_images_and_digests_without_tag_are_refused() {
    let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let cases = [
        (
            "upper case",
            "Registry.example.com/Team/App:1".to_owned(),
            "is not an image reference",
        ),
        (
            "an empty tag",
            "registry.example.com/app:".to_owned(),
            "is not an image reference",
        ),
        (
            "a scheme",
            "https://registry.example.com/app:1".to_owned(),
            "is not an image reference",
        ),
        ("a digest alone", format!("nginx@{digest}"), "deploy-image"),
    ];
    for (description, input, message) in cases {
        match parse_image(&input) {
            Ok(image) => panic!("{description}: {input} was taken as {image}"),
            Err(e) => assert!(
                e.contains(message) && e.contains(input.trim()),
                "{description}: {e}"
            ),
        }
    }
    assert!(
        parse_reference(&format!("nginx@{digest}")).is_ok(),
        "deploy-image takes a digest alone"
    );
    assert!(parse_reference("Nginx").is_err());
}

#[test]
fn env_vars_split_at_the_first_equals_sign() {
    assert_eq!(
        parse_env_var("A=b=c"),
        Ok(("A".to_owned(), "b=c".to_owned()))
    );
    assert_eq!(parse_env_var("EMPTY="), Ok(("EMPTY".into(), String::new())));
    assert!(parse_env_var("NOVALUE").is_err());
    assert!(parse_env_var("=x").is_err());
}

#[test]
fn instants_are_rfc_3339_with_any_offset() {
    assert_eq!(
        parse_instant("2026-01-31T01:00:00+01:00").map(|t| t.to_rfc3339()),
        Ok("2026-01-31T00:00:00+00:00".to_owned())
    );
    for bad in ["2026-01-31", "yesterday", "2026-01-31 00:00:00"] {
        assert!(parse_instant(bad).is_err(), "{bad} was taken");
    }
}

#[test]
fn urls_lose_their_trailing_slash_and_need_http() {
    assert_eq!(
        parse_url("http://127.0.0.1:8080/"),
        Ok("http://127.0.0.1:8080".to_owned())
    );
    assert_eq!(
        parse_url("https://ops.example.com/shiplog/"),
        Ok("https://ops.example.com/shiplog".to_owned())
    );
    assert!(parse_url("ftp://x").is_err());
    assert!(parse_url("not a url").is_err());
}

#[test]
fn lifetimes_are_read_in_peoples_words_as_seconds() {
    let cases = [
        ("days", "30d", Ok(30 * 86_400)),
        ("hours", "12h", Ok(12 * 3_600)),
        ("a week", "1w", Ok(7 * 86_400)),
        ("days and hours", "1d 12h", Ok(36 * 3_600)),
        ("ISO 8601", "P2D", Ok(2 * 86_400)),
        ("seconds", "90s", Ok(90)),
        ("no unit", "30", Err(())),
        ("words", "a month", Err(())),
        ("nothing", "0s", Err(())),
    ];
    for (description, raw, expected) in cases {
        assert_eq!(
            parse_lifetime(raw).map_err(|_| ()),
            expected,
            "{description}: {raw}"
        );
    }
}
