"""Read pipeline-file text into a :class:`~bedside.domain.spec.PipelineSpec`, or say why not.

The YAML is composed with PyYAML's safe loader so every key and value keeps its line and column.
Problems of the YAML itself (syntax, repeated keys, keys that are not text) and every schema
problem Pydantic finds are reported together, each as a :class:`SpecIssue` naming the file, line,
column and key, what was expected, what was found and how to fix it. Values shown are the user's
own configuration, never patient data, and are shortened when long.
"""

from __future__ import annotations

import difflib
import hashlib
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bedside.domain.spec import PipelineSpec
from bedside.errors import PipelineFileError

__all__ = [
    "MAX_PIPELINE_BYTES",
    "PipelineFile",
    "SpecIssue",
    "load_pipeline_bytes",
    "load_pipeline_text",
]

MAX_PIPELINE_BYTES: Final = 1_000_000
_MAX_VALUES: Final = 50_000  # values after alias expansion; stops "billion laughs" files
_DOCS: Final = "docs/pipeline.md"

_STR = "tag:yaml.org,2002:str"
_TAG_WORDS: Final = {
    "tag:yaml.org,2002:bool": "a boolean (true/false)",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:null": "nothing (null)",
    "tag:yaml.org,2002:timestamp": "a date",
}


@dataclass(frozen=True, slots=True)
class SpecIssue:
    """One problem in a pipeline file, located and explained.

    ``line`` and ``column`` are 1-based (``None`` when the problem concerns the whole file);
    ``key_path`` reads like ``pipeline.stages[3].shadow_duration``.
    """

    file: str
    line: int | None
    column: int | None
    key_path: str
    expected: str
    found: str
    fix: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.key_path}:" if self.key_path else ""
        return f"{where}:{key} expected {self.expected}; found {self.found}. Fix: {self.fix}"


@dataclass(frozen=True, slots=True)
class PipelineFile:
    """A validated pipeline file: the spec, the digest of its exact bytes, and its source."""

    spec: PipelineSpec
    content_sha256: str
    source: str
    text: str


def _short(text: str, limit: int = 60) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _raise(source: str, issues: list[SpecIssue]) -> typing.NoReturn:
    issues = sorted(
        issues, key=lambda i: (i.line if i.line is not None else 0, i.column or 0, i.key_path)
    )
    count = f"{len(issues)} problem" + ("s" if len(issues) != 1 else "")
    body = "\n".join(f"  {issue}" for issue in issues)
    raise PipelineFileError(
        f"{source} is not a valid pipeline file ({count}):\n{body}", issues=issues
    )


# ========================================================================================= entry


def load_pipeline_bytes(data: bytes, *, source: str = "<bytes>") -> PipelineFile:
    """Decode UTF-8 pipeline-file bytes and load them; the digest covers exactly these bytes.

    Raises:
        PipelineFileError: the bytes are not UTF-8 text, or the text is not a valid pipeline file.
    """
    if len(data) > MAX_PIPELINE_BYTES:
        _raise(
            source,
            [
                SpecIssue(
                    source,
                    None,
                    None,
                    "",
                    f"a pipeline file of at most {MAX_PIPELINE_BYTES:,} bytes",
                    f"{len(data):,} bytes",
                    "check that this is the pipeline YAML file",
                )
            ],
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        _raise(
            source,
            [
                SpecIssue(
                    source,
                    line,
                    column,
                    "",
                    "UTF-8 text",
                    f"the byte 0x{data[exc.start]:02x}, which is not UTF-8",
                    "save the file as UTF-8",
                )
            ],
        )
    return _load(text, data, source)


def load_pipeline_text(text: str, *, source: str = "<string>") -> PipelineFile:
    """Load pipeline-file text into a validated :class:`PipelineFile`.

    Args:
        text: the YAML text.
        source: the name to show in messages (usually the file path).

    Returns:
        The spec, the SHA-256 of the text's UTF-8 bytes, the source and the text.

    Raises:
        PipelineFileError: with ``issues``, every problem found (a list of :class:`SpecIssue`).
    """
    data = text.encode("utf-8")
    if len(data) > MAX_PIPELINE_BYTES:
        return load_pipeline_bytes(data, source=source)
    return _load(text, data, source)


def _load(text: str, data: bytes, source: str) -> PipelineFile:
    issues: list[SpecIssue] = []
    node, content = _compose(text, source, issues)
    if node is None:
        if not issues:
            issues.append(
                SpecIssue(
                    source,
                    1,
                    1,
                    "",
                    "a YAML mapping that starts with 'pipeline:'",
                    "an empty file",
                    f"start from examples/sepsis/pipeline.yaml (reference: {_DOCS})",
                )
            )
        _raise(source, issues)
    structural = _check_structure(node, source)
    issues += structural
    if any(issue.expected.startswith("at most") for issue in structural):
        _raise(source, issues)  # too large to validate further
    try:
        spec = PipelineSpec.model_validate(content)
    except ValidationError as exc:
        taken = {(i.line, i.column) for i in issues}
        found = [
            _issue_from_error(error, node, text, source)
            for error in exc.errors()
            if not _is_echo(error)
        ]
        for issue in _without_shadowed_missing(found):
            if (issue.line, issue.column) in taken:
                continue  # already explained by a YAML-level issue at the same place
            if issue not in issues:
                issues.append(issue)
    else:
        if not issues:
            return PipelineFile(spec, hashlib.sha256(data).hexdigest(), source, text)
    _raise(source, issues)


def _is_echo(error: Any) -> bool:
    """Tell errors that only repeat another one, so the user reads each problem once."""
    if any(isinstance(element, bool) for element in error["loc"]):
        return True  # a key YAML read as true/false: reported as "a key that is text"
    if error["type"] == "too_short":
        given = error.get("input")
        minimum = (error.get("ctx") or {}).get("min_length", 0)
        # "at least 1 item after validation, not 0": the items themselves were wrong
        return isinstance(given, list | tuple) and len(given) >= minimum
    return False


def _without_shadowed_missing(issues: list[SpecIssue]) -> list[SpecIssue]:
    """Drop "missing key X" when the same mapping has an unknown key that is a typo of X."""
    typos = set()
    for issue in issues:
        if issue.found.startswith("the unknown key") and issue.fix.startswith("did you mean"):
            parent = issue.key_path.rpartition(".")[0]
            typos.add((parent, issue.fix.split("'")[1]))
    return [
        issue
        for issue in issues
        if not (
            issue.found == "no such key"
            and (issue.key_path.rpartition(".")[0], issue.key_path.rpartition(".")[2]) in typos
        )
    ]


# ========================================================================================== YAML

_YAML_FIXES: Final = (
    ("found character '\\t'", "indent with spaces; YAML does not allow tabs"),
    (
        "but got ':'",
        "quote a value that contains ':' (e.g. description: \"Verify: no PHI\")",
    ),
    ("expected ',' or ']'", "close the list with ']' before the '}' or end of line"),
    ("expected ',' or '}'", "close the mapping with '}', or quote the value"),
    (
        "mapping values are not allowed",
        "quote a value that contains ': ' (e.g. description: \"a: b\"), or fix the indentation",
    ),
    ("expected a single document", "keep one YAML document per pipeline file (remove '---')"),
    ("could not find expected ':'", "add the ':' after the key, or close the open quote"),
    ("found unexpected end of stream", "close the open quote or bracket"),
    ("did not find expected", "check brackets, quotes and indentation on this line and above"),
    ("found undefined alias", "define the anchor (&name) before using the alias (*name)"),
    ("could not determine a constructor", "remove the YAML tag (values starting with '!')"),
)


def _compose(text: str, source: str, issues: list[SpecIssue]) -> tuple[Node | None, Any]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        content = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        fix = next(
            (fix for needle, fix in _YAML_FIXES if needle in str(exc)),
            "check the indentation and quoting on this line and the one above",
        )
        issues.append(
            SpecIssue(
                source,
                mark.line + 1 if mark else None,
                mark.column + 1 if mark else None,
                "",
                "valid YAML",
                _short(problem, 120),
                fix,
            )
        )
        return None, None
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        # e.g. a timestamp such as 2024-13-45 that PyYAML cannot turn into a date
        issues.append(
            SpecIssue(
                source,
                None,
                None,
                "",
                "valid YAML",
                _short(str(exc), 120),
                "quote values that only look like dates or numbers",
            )
        )
        return None, None
    except RecursionError:
        issues.append(
            SpecIssue(
                source,
                None,
                None,
                "",
                "a YAML file nested a few levels deep",
                "nesting too deep to read",
                "flatten the file",
            )
        )
        return None, None
    finally:
        loader.dispose()
    return node, content


def _path_text(parts: Sequence[str | int]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text


def _scalar_words(node: ScalarNode) -> str:
    if node.tag == _STR:
        return f"'{_short(node.value)}'"
    word = _TAG_WORDS.get(node.tag)
    if node.tag == "tag:yaml.org,2002:null":
        return "nothing (null)"
    if node.tag == "tag:yaml.org,2002:bool":
        value = yaml.safe_load(node.value)
        return f"{_short(node.value)} (read as the boolean {str(value).lower()})"
    if word:
        return f"{_short(node.value)} (read as {word})"
    return f"'{_short(node.value)}'"


def _describe(node: Node | None) -> str:
    if node is None:
        return "nothing"
    if isinstance(node, ScalarNode):
        return _scalar_words(node)
    if isinstance(node, SequenceNode):
        count = len(node.value)
        return "an empty list" if count == 0 else f"a list of {count} item" + "s" * (count != 1)
    keys = [k.value for k, _ in node.value if isinstance(k, ScalarNode)]
    if not keys:
        return "an empty mapping"
    return "a mapping with keys " + ", ".join(_short(str(k), 30) for k in keys[:6])


def _check_structure(root: Node, source: str) -> list[SpecIssue]:
    """Find repeated keys, keys that are not text, a root that is not a mapping, alias bombs."""
    issues: list[SpecIssue] = []
    if not isinstance(root, MappingNode):
        issues.append(
            SpecIssue(
                source,
                root.start_mark.line + 1,
                root.start_mark.column + 1,
                "",
                "a mapping that starts with 'pipeline:'",
                _describe(root),
                "start from examples/sepsis/pipeline.yaml",
            )
        )
        return issues
    stack: list[tuple[Node, tuple[str | int, ...]]] = [(root, ())]
    visited = 0
    while stack:
        node, path = stack.pop()
        visited += 1
        if visited > _MAX_VALUES:
            return [
                SpecIssue(
                    source,
                    None,
                    None,
                    "",
                    f"at most {_MAX_VALUES:,} values (after expanding YAML aliases)",
                    "more",
                    "write the pipeline out without deeply repeated aliases",
                )
            ]
        if isinstance(node, SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
            continue
        if not isinstance(node, MappingNode):
            continue
        first_seen: dict[str, int] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                stack.append((value, path))
                continue
            if not isinstance(key, ScalarNode) or key.tag != _STR:
                found = _describe(key)
                fix = "write keys as plain names"
                if isinstance(key, ScalarNode):
                    fix = f"quote the key: '{_short(key.value, 30)}':"
                issues.append(
                    SpecIssue(
                        source,
                        key.start_mark.line + 1,
                        key.start_mark.column + 1,
                        _path_text(path),
                        "a key that is text",
                        found,
                        fix,
                    )
                )
                continue
            name = key.value
            if name in first_seen:
                issues.append(
                    SpecIssue(
                        source,
                        key.start_mark.line + 1,
                        key.start_mark.column + 1,
                        _path_text((*path, name)),
                        "each key once per mapping",
                        f"'{_short(name, 40)}' a second time (first on line {first_seen[name]})",
                        "remove one of the two, or merge them",
                    )
                )
            else:
                first_seen[name] = key.start_mark.line + 1
            stack.append((value, (*path, name)))
    return issues


# ========================================================================= pydantic error -> issue


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _annotated_metadata(annotation: Any) -> Iterator[Any]:
    """Yield the constraint objects inside an annotation (through Optional and Annotated)."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        for item in get_args(annotation)[1:]:
            if isinstance(item, FieldInfo):
                yield from item.metadata
            else:
                yield item
        yield from _annotated_metadata(get_args(annotation)[0])
    elif origin in (Union, types.UnionType):
        for member in get_args(annotation):
            yield from _annotated_metadata(member)


def _tagged_member(union: Any, tag: str) -> type[BaseModel] | None:
    if get_origin(union) not in (Union, types.UnionType):
        return None
    for member in get_args(union):
        member = _unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            for key in ("name", "kind", "check"):
                field = member.model_fields.get(key)
                if (
                    field is not None
                    and get_origin(field.annotation) is Literal
                    and tag in get_args(field.annotation)
                ):
                    return member
    return None


@dataclass
class _Place:
    node: Node  # deepest YAML node reached
    key_node: Node | None  # the key of that node, when it is a mapping value
    path: list[str | int]  # YAML path of the loc, discriminator tags skipped
    reached: bool  # False: the last loc element has no YAML node (a missing key)
    annotation: Any  # the schema type at the loc (None when unknown)
    field: FieldInfo | None  # the field at the loc, if the loc ends on a model field
    parent_model: type[BaseModel] | None  # the model holding that field


def _locate(root: Node, loc: Sequence[str | int]) -> _Place:
    node: Node = root
    key_node: Node | None = None
    annotation: Any = PipelineSpec
    field: FieldInfo | None = None
    parent_model: type[BaseModel] | None = None
    path: list[str | int] = []
    for element in loc:
        if element == "[key]":  # the error is about the mapping key itself
            if key_node is not None:
                return _Place(key_node, None, path, True, None, field, parent_model)
            break
        current = _unwrap(annotation) if annotation is not None else None
        if isinstance(element, str):
            member = _tagged_member(current, element)
            if member is not None:  # a discriminator tag in the loc, not a YAML key
                annotation = member
                continue
        # the schema step
        field = None
        parent_model = None
        if isinstance(current, type) and issubclass(current, BaseModel):
            parent_model = current
            field = current.model_fields.get(str(element))
            annotation = field.annotation if field is not None else None
        elif get_origin(current) in (tuple, list) and isinstance(element, int):
            annotation = get_args(current)[0]
        elif get_origin(current) is dict:
            annotation = get_args(current)[1]
        else:
            annotation = None
        # the YAML step
        following: Node | None = None
        following_key: Node | None = None
        if isinstance(node, MappingNode) and isinstance(element, str):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.tag == _STR and key.value == element:
                    following, following_key = value, key  # the last one wins, as in loading
        elif (
            isinstance(node, SequenceNode)
            and isinstance(element, int)
            and 0 <= element < len(node.value)
        ):
            following = node.value[element]
        path.append(element)
        if following is None:
            return _Place(node, key_node, path, False, annotation, field, parent_model)
        node, key_node = following, following_key
    return _Place(node, key_node, path, True, annotation, field, parent_model)


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _bounds_text(place: _Place, whole: bool) -> str:
    low: Any = None
    high: Any = None
    low_open = high_open = False
    items = list(place.field.metadata) if place.field is not None else []
    items += list(_annotated_metadata(place.field.annotation if place.field else None))
    for item in items:  # annotated_types.Ge / Gt / Le / Lt, read by attribute
        if getattr(item, "ge", None) is not None:
            low = item.ge
        elif getattr(item, "gt", None) is not None:
            low, low_open = item.gt, True
        if getattr(item, "le", None) is not None:
            high = item.le
        elif getattr(item, "lt", None) is not None:
            high, high_open = item.lt, True
    noun = "a whole number" if whole else "a number"
    if low is not None and high is not None:
        if low_open or high_open:
            return f"{noun} greater than {low} and less than {high}"
        return f"{noun} from {low} to {high}"
    if low is not None:
        return f"{noun} greater than {low}" if low_open else f"{noun} of at least {low}"
    if high is not None:
        return f"{noun} less than {high}" if high_open else f"{noun} of at most {high}"
    return noun


def _options(annotation: Any) -> list[str]:
    annotation = _unwrap(annotation) if annotation is not None else None
    if get_origin(annotation) is Literal:
        return [str(option) for option in get_args(annotation)]
    return []


def _did_you_mean(word: str, options: Sequence[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _quote_fix(node: Node | None, key: str) -> str | None:
    """Explain a YAML 1.1 trap: an unquoted value read as a number, boolean, date or null."""
    if isinstance(node, ScalarNode) and node.tag != _STR and node.style is None:
        word = _TAG_WORDS.get(node.tag, "something other than text")
        return (
            f'quote it: {key}: "{_short(node.value, 40)}" (unquoted, YAML reads '
            f"{_short(node.value, 40)} as {word})"
        )
    return None


def _expression_position(node: Node, column: int, text: str) -> tuple[int, int]:
    """Return the file position of 1-based ``column`` inside a one-line expression scalar."""
    line, start = _position(node)
    if not isinstance(node, ScalarNode) or node.start_mark.line != node.end_mark.line:
        return line, start
    offset = 1 if node.style in ("'", '"') else 0
    source_line = text.splitlines()[node.start_mark.line]
    begin = node.start_mark.column + offset
    if source_line[begin : begin + len(node.value)] != node.value:
        return line, start  # escapes or folding: the text differs from the value
    return line, begin + column


def _issue_from_error(error: Any, root: Node, text: str, source: str) -> SpecIssue:
    kind: str = error["type"]
    context: dict[str, Any] = error.get("ctx") or {}
    place = _locate(root, error["loc"])
    node, key_node = place.node, place.key_node
    last = place.path[-1] if place.path else ""
    key_name = (
        str(last)
        if isinstance(last, str)
        else (str(place.path[-2]) if len(place.path) > 1 else "value")
    )
    path = list(place.path)
    line, column = _position(node)
    if key_node is not None and isinstance(node, MappingNode | SequenceNode):
        line, column = _position(key_node)  # point at the line that names the collection
    found = _describe(node) if place.reached else "nothing"
    expected = str(error.get("msg", "a valid value"))
    fix = f"see the reference for this key in {_DOCS}"

    if kind == "missing":
        missing = str(place.path[-1]) if place.path else ""
        examples = place.field.examples if place.field is not None else None
        example = examples[0] if examples else "..."
        if isinstance(example, list):
            example = "[" + ", ".join(str(e) for e in example) + "]"
        expected = f"the key '{missing}'"
        found = "no such key"
        fix = f"add {missing}: {example}"
        line, column = _position(node)
    elif kind == "extra_forbidden":
        allowed = list(place.parent_model.model_fields) if place.parent_model else []
        if key_node is not None:
            line, column = _position(key_node)
        expected = "one of the keys " + ", ".join(allowed) if allowed else "no other keys"
        found = f"the unknown key '{_short(str(last), 40)}'"
        suggestion = _did_you_mean(str(last), allowed)
        fix = f"did you mean '{suggestion}'?" if suggestion else "remove the key"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        discriminator = str(context.get("discriminator", "'name'")).strip("'")
        tags = [t.strip().strip("'") for t in str(context.get("expected_tags", "")).split(",")]
        if kind == "union_tag_invalid" and isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value == discriminator:
                    line, column = _position(value)
                    found = _describe(value)
            path.append(discriminator)
        if not tags or tags == [""]:
            member_options = _options_of_union(place.annotation, discriminator)
            tags = member_options
        expected = f"a '{discriminator}' that is one of " + ", ".join(tags)
        if kind == "union_tag_not_found":
            found = _describe(node) + f" without '{discriminator}'"
            fix = f"add {discriminator}: one of " + ", ".join(tags)
        else:
            suggestion = _did_you_mean(str(context.get("tag", "")), tags)
            fix = f"did you mean '{suggestion}'?" if suggestion else "use one of " + ", ".join(tags)
    elif kind == "literal_error":
        options = _options(place.annotation) or [
            o.strip().strip("'")
            for o in str(context.get("expected", "")).replace(" or ", ", ").split(",")
        ]
        expected = "one of " + ", ".join(options)
        word = node.value if isinstance(node, ScalarNode) else ""
        suggestion = _did_you_mean(str(word), options) if word else None
        fix = f"did you mean '{suggestion}'?" if suggestion else "use one of " + ", ".join(options)
        quote = _quote_fix(node, key_name)
        if quote and not suggestion and isinstance(node, ScalarNode) and node.tag != _STR:
            fix = quote
    elif kind == "string_type":
        expected = "text"
        fix = _quote_fix(node, key_name) or "write the value as text"
    elif kind in ("float_type", "float_parsing"):
        expected = _bounds_text(place, whole=False)
        fix = "write a number without quotes, e.g. 0.85"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        expected = _bounds_text(place, whole=True)
        fix = "write a whole number without quotes, e.g. 2"
    elif kind in ("bool_type", "bool_parsing"):
        expected = "true or false"
        fix = "write true or false, without quotes"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        expected = _bounds_text(place, whole=isinstance(error.get("input"), int))
        fix = "use a value in that range"
    elif kind in ("too_short", "too_long"):
        size = context.get("min_length" if kind == "too_short" else "max_length")
        bound = "at least" if kind == "too_short" else "at most"
        expected = f"a list of {bound} {size} item" + "s" * (size != 1)
        fix = "add the missing entries" if kind == "too_short" else "remove entries"
    elif kind in ("tuple_type", "list_type"):
        expected = "a list, such as [a, b]"
        fix = "write the values as a list: [a, b] or one '- ' line per item"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        expected = "a mapping of keys and values (key: value)"
        fix = "write the settings as key: value lines, or {key: value}"
    elif kind.startswith("date"):
        expected = "a date such as 2024-01-01"
        fix = "write the date as YYYY-MM-DD"
    elif kind == "string_pattern_mismatch":
        expected = 'three digits in quotes, such as "036"'
        fix = 'quote ZIP prefixes so YAML keeps the leading zero: "036"'
    elif "problem" in context:  # our own errors (spec_types.custom_error)
        expected = str(context["expected"])
        problem = str(context["problem"])
        fix = str(context.get("fix") or fix)
        found = f"{_describe(node)}: {problem}" if place.reached else problem
        if kind == "expression" and "column" in context:
            line, column = _expression_position(node, int(context["column"]), text)
        quote = _quote_fix(node, key_name)
        if quote and kind in ("identifier", "role_name", "name", "version", "username", "text"):
            fix = quote
        if kind in ("stage_missing", "gate_missing", "empty_roles") and key_node is not None:
            line, column = _position(key_node)
    elif kind == "invalid-json-value":
        expected = "a plain value: text, a number, true/false, a list or a mapping"
        fix = "remove YAML tags and special values"

    return SpecIssue(
        file=source,
        line=line,
        column=column,
        key_path=_path_text(path),
        expected=expected,
        found=found,
        fix=fix,
    )


def _options_of_union(annotation: Any, discriminator: str) -> list[str]:
    current = _unwrap(annotation) if annotation is not None else None
    options: list[str] = []
    if get_origin(current) in (Union, types.UnionType):
        for member in get_args(current):
            member = _unwrap(member)
            if isinstance(member, type) and issubclass(member, BaseModel):
                field = member.model_fields.get(discriminator)
                if field is not None:
                    options += _options(field.annotation)
    return options
