"""Manifest loading and local validation: errors name the file, the document, the object and the field."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from shoal.cli.manifests import ManifestError, load_manifests

GOOD = """\
apiVersion: shoal/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web:2}]}
"""
BAD_MEMORY = GOOD.replace("image: web:2}", "image: web:2, resources: {limits: {memory: 64MB}}}")


def load(tmp_path: Path, text: str, name: str = "web.yaml", **kw: object) -> list[object]:
    file = tmp_path / name
    file.write_text(text)
    return list(load_manifests([str(file)], io.StringIO(), **kw))  # type: ignore[arg-type]


def test_multi_document_file_keeps_order_and_document_numbers(tmp_path: Path) -> None:
    text = GOOD + "---\n---\napiVersion: shoal/v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n"
    (tmp_path / "x.yaml").write_text(text)
    manifests = load_manifests([str(tmp_path / "x.yaml")], io.StringIO())
    assert [(m.info.kind, m.name, m.document) for m in manifests] == [("Deployment", "web", 1), ("ConfigMap", "cfg", 3)]


def test_bad_quantity_names_file_document_object_field_and_fix(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as err:
        load(tmp_path, GOOD.replace("name: web}", "name: ok}") + "---\n" + BAD_MEMORY)
    message = str(err.value)
    assert message.startswith(f'{tmp_path / "web.yaml"} (document 2, Deployment "web"):\n  ')
    assert "spec.template.spec.containers[0].resources.limits.memory" in message
    assert '"64Mi"' in message


def test_unknown_field_has_a_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as err:
        load(tmp_path, GOOD.replace("replicas: 3", "replica: 3"))
    assert 'spec.replica: unknown field "replica"; did you mean "replicas"?' in str(err.value)


def test_every_invalid_document_is_reported_at_once(tmp_path: Path) -> None:
    second = GOOD.replace("name: web}", "name: Web_2}")
    with pytest.raises(ManifestError) as err:
        load(tmp_path, BAD_MEMORY + "---\n" + second)
    message = str(err.value)
    assert "(document 1, Deployment \"web\")" in message
    assert "(document 2, Deployment \"Web_2\")" in message
    assert "metadata.name" in message


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as err:
        load(tmp_path, "kind: Pod\nmetadata: {name: a\n")
    assert str(err.value).startswith(f"{tmp_path / 'web.yaml'}: line ")
    assert "not valid YAML" in str(err.value)


def test_json_manifests_and_list_documents(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"kind": "List", "items": [{"kind": "ConfigMap", "metadata": {"name": "x"}},'
                                     ' {"kind": "Secret", "metadata": {"name": "y"}}]}')
    manifests = load_manifests([str(tmp_path / "a.json")], io.StringIO())
    assert [m.info.kind for m in manifests] == ["ConfigMap", "Secret"]


def test_bad_json_names_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"a\.json: line 1, column \d+"):
        load(tmp_path, '{"kind": "Pod",', name="a.json")


def test_directory_loads_yaml_and_json_files_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("kind: ConfigMap\nmetadata: {name: b}\n")
    (tmp_path / "a.yml").write_text("kind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert [m.name for m in load_manifests([str(tmp_path)], io.StringIO())] == ["a", "b"]


def test_stdin_and_missing_paths(tmp_path: Path) -> None:
    assert load_manifests(["-"], io.StringIO("kind: ConfigMap\nmetadata: {name: s}\n"))[0].source == "<stdin>"
    with pytest.raises(ManifestError, match="no such file or directory"):
        load_manifests([str(tmp_path / "missing.yaml")], io.StringIO())
    with pytest.raises(ManifestError, match="no objects found"):
        load(tmp_path, "# only a comment\n")


def test_timestamps_stay_strings_and_missing_kind_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as err:
        load(tmp_path, "metadata: {name: a, creationTimestamp: 2026-11-23T08:00:00Z}\n")
    assert "kind: required field is missing" in str(err.value)
    assert load(tmp_path, "kind: ConfigMap\nmetadata: {name: a, creationTimestamp: 2026-11-23T08:00:00Z}\n")


def test_namespace_flag_conflicting_with_manifest_is_an_error(tmp_path: Path) -> None:
    text = "kind: ConfigMap\nmetadata: {name: a, namespace: prod}\n"
    with pytest.raises(ManifestError, match='does not match --namespace "dev"'):
        load(tmp_path, text, namespace="dev")
    manifest = load_manifests(["-"], io.StringIO("kind: ConfigMap\nmetadata: {name: a}\n"))[0]
    assert manifest.placed(None)["metadata"]["namespace"] == "default"
    assert manifest.placed("dev")["metadata"]["namespace"] == "dev"
    node = load_manifests(["-"], io.StringIO("kind: Node\nmetadata: {name: gw-1}\n"))[0]
    assert "namespace" not in node.placed("dev")["metadata"]
