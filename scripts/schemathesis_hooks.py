"""schemathesis hooks for scripts/fuzz (loaded through SCHEMATHESIS_HOOKS).

The document states every rule the server enforces that JSON Schema can say. A few
rules span several fields, and JSON Schema cannot say them; the server refuses
them with a 422 naming the field (tests/api/secrets.rs covers each). Requests that
break one of them are not generated, so that the fuzzing and stateful phases send
bodies that go through (the coverage phase runs no hooks: scripts/schemathesis.toml
says what that costs):

- a variable has one source: a name is in at most one of env, secretEnv and
  secretRefs, and in secretRefs at most once (the document says `uniqueItems` for
  secretRefs, which covers identical entries only);
- a masked secret ({"secret": true, "key": ...}, what answers show) is not a value
  to deploy: requests send the value itself.
"""

import schemathesis


def _names(value):
    return list(value.keys()) if isinstance(value, dict) else []


def _breaks_a_cross_field_rule(config):
    if not isinstance(config, dict):
        return False
    env = _names(config.get("env"))
    secret_env = config.get("secretEnv")
    secret = _names(secret_env)
    refs = config.get("secretRefs")
    ref_names = [r.get("name") for r in refs if isinstance(r, dict)] if isinstance(refs, list) else []
    # Schema-violating cases may hold anything where a name belongs: only names count.
    names = [n for n in env + secret + ref_names if isinstance(n, str)]
    if len(names) != len(set(names)):
        return True
    if isinstance(secret_env, dict) and any(not isinstance(v, str) for v in secret_env.values()):
        return True
    return False


@schemathesis.hook
def filter_body(ctx, body):
    if not isinstance(body, dict):
        return True
    # POST /api/usecases/{id}/deployments nests the config; PUT .../config does not.
    return not (_breaks_a_cross_field_rule(body.get("config")) or _breaks_a_cross_field_rule(body))
