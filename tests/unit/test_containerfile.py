"""pypod.build.containerfile: reading Containerfiles the way buildah (BuildKit's parser) does."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pypod.build.containerfile import (
    INSTRUCTIONS,
    Containerfile,
    ContainerfileError,
    Flag,
    Instruction,
    parse,
    parse_duration,
    parse_instructions,
)
from pypod.errors import InvalidArgument


def cf(text: str, path: str = "Containerfile") -> Containerfile:
    return parse(textwrap.dedent(text).lstrip("\n"), path)


def one(text: str) -> Instruction:
    """The only instruction after FROM."""
    (stage,) = cf("FROM scratch\n" + textwrap.dedent(text).lstrip("\n")).stages
    (ins,) = stage.instructions
    return ins


def error_of(text: str, path: str = "Containerfile") -> str:
    with pytest.raises(ContainerfileError) as err:
        parse(textwrap.dedent(text).lstrip("\n"), path)
    return str(err.value)


# --- stages, FROM, ARG -------------------------------------------------------------------


def test_single_stage_and_line_numbers() -> None:
    parsed = cf(
        """
        FROM busybox
        # a comment

        RUN echo hi
        CMD ["sh"]
        """
    )
    (stage,) = parsed.stages
    assert stage.index == 0 and stage.name is None and stage.base == "busybox"
    assert stage.from_instruction.line == 1
    assert [(i.command, i.line) for i in stage.instructions] == [("RUN", 4), ("CMD", 5)]
    assert parsed.escape == "\\" and parsed.syntax is None and parsed.global_args == ()


def test_multi_stage_with_names_and_platform() -> None:
    parsed = cf(
        """
        ARG BASE=alpine
        ARG VERSION
        FROM --platform=linux/amd64 $BASE AS Builder
        RUN make
        from busybox as runtime
        COPY --from=builder /out /app
        FROM runtime
        """
    )
    assert [a.args for a in parsed.global_args] == [("BASE=alpine",), ("VERSION",)]
    assert [(s.index, s.name, s.base) for s in parsed.stages] == [
        (0, "builder", "$BASE"),
        (1, "runtime", "busybox"),
        (2, None, "runtime"),
    ]
    assert parsed.stages[0].platform == "linux/amd64"
    assert parsed.stages[1].platform is None
    assert parsed.stage("BUILDER").index == 0
    assert parsed.stage("2").index == 2
    with pytest.raises(InvalidArgument, match="no stage named 'nope'"):
        parsed.stage("nope")
    copy = parsed.stages[1].instructions[0]
    assert copy.flag_value("from") == "builder" and copy.args == ("/out", "/app")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM\n", "Containerfile:1: FROM requires either one argument, or three"),
        ("FROM a b\n", "Containerfile:1: FROM requires either one argument, or three"),
        ("FROM a AS\n", "Containerfile:1: FROM requires either one argument, or three"),
        ("FROM a to b\n", "Containerfile:1: FROM requires either one argument, or three"),
        (
            "FROM a AS 1st\n",
            'Containerfile:1: invalid name for build stage: "1st", name can\'t start with a number',
        ),
        ("FROM a AS b$\n", 'Containerfile:1: invalid name for build stage: "b$"'),
        ("FROM a AS x\nFROM b AS X\n", 'Containerfile:2: duplicate stage name "x"'),
        ("FROM --foo=bar a\n", "Containerfile:1: FROM only supports the --platform flag"),
        ("RUN true\nFROM a\n", "Containerfile:1: RUN before the first FROM"),
        ("ARG A\n", "Containerfile: no stages to build"),
        ("", "Containerfile: file with no instructions"),
        ("# only a comment\n\n", "Containerfile: file with no instructions"),
    ],
)
def test_stage_errors(text: str, message: str) -> None:
    assert error_of(text).startswith(message)


# --- directives ---------------------------------------------------------------------------


def test_escape_and_syntax_directives() -> None:
    parsed = cf(
        """
        # syntax=docker/dockerfile:1.4
        #ESCAPE = `
        FROM windows
        RUN dir C:\\ `
            && echo done
        COPY a.txt C:\\dest\\
        """
    )
    assert parsed.escape == "`"
    assert parsed.syntax == "docker/dockerfile:1.4"
    assert parsed.directives == (("syntax", "docker/dockerfile:1.4"), ("escape", "`"))
    run, copy = parsed.stages[0].instructions
    assert run.args == ("dir C:\\     && echo done",)
    assert (run.line, run.end_line) == (4, 5)
    assert copy.args == ("a.txt", "C:\\dest\\")


@pytest.mark.parametrize(
    "text",
    [
        # a directive after an instruction is a comment
        "FROM a\n# escape=`\nRUN a \\\n b\n",
        # ...after an ordinary comment too
        "# hello\n# escape=`\nFROM a\nRUN a \\\n b\n",
        # ...and after an empty line
        "\n# escape=`\nFROM a\nRUN a \\\n b\n",
    ],
)
def test_directives_only_at_the_top(text: str) -> None:
    parsed = parse(text)
    assert parsed.escape == "\\"
    assert parsed.stages[0].instructions[0].args == ("a  b",)


def test_unknown_directive_is_a_comment_that_keeps_directives_open() -> None:
    parsed = parse("# foo=bar\n# escape=`\nFROM a\n")
    assert parsed.escape == "`"
    assert parsed.directives == (("escape", "`"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# escape=x\nFROM a\n", "Containerfile:1: invalid ESCAPE 'x'. Must be ` or \\"),
        (
            "# escape=`\n# Escape=\\\nFROM a\n",
            "Containerfile:2: only one escape parser directive can be used",
        ),
    ],
)
def test_directive_errors(text: str, message: str) -> None:
    assert error_of(text) == message


# --- lines, comments, continuations -------------------------------------------------------


def test_continuations_comments_and_empty_continuation_lines() -> None:
    ins = one(
        """
        RUN apt-get update \\
        # a comment in the middle is dropped
            && apt-get install -y \\

                curl \\
                git
        """
    )
    assert ins.args == ("apt-get update     && apt-get install -y         curl         git",)
    assert (ins.line, ins.end_line) == (2, 7)


def test_continuation_with_trailing_blanks_and_at_end_of_file() -> None:
    parsed = parse("FROM a\nRUN echo a \\  \t\n  b\nRUN echo c \\")
    first, last = parsed.stages[0].instructions
    assert first.args == ("echo a   b",)
    assert last.args == ("echo c",)


def test_indented_instructions_and_comments_and_crlf() -> None:
    parsed = parse("  FROM a\r\n\t# comment\r\n   run   echo hi  \r\n")
    (run,) = parsed.stages[0].instructions
    assert run.command == "RUN" and run.args == ("echo hi",) and run.line == 3


def test_byte_order_mark_is_ignored() -> None:
    assert parse("\ufeffFROM a\n").stages[0].base == "a"


def test_instructions_are_case_insensitive() -> None:
    parsed = parse("from a\nRuN x\nwOrKdIr /w\n")
    assert [i.command for i in parsed.stages[0].instructions] == ["RUN", "WORKDIR"]


def test_unknown_instruction_names_file_and_line() -> None:
    text = "FROM a\n" + "RUN true\n" * 10 + "foo bar\n"
    assert error_of(text) == "Containerfile:12: unknown instruction: FOO"
    assert error_of("FROM a\nCOPYY a b\n", "Dockerfile.dev") == (
        "Dockerfile.dev:2: unknown instruction: COPYY"
    )


def test_error_is_an_invalid_argument_with_path_and_line() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse("FROM a\n\nbogus\n", "ctx/Containerfile")
    assert isinstance(err.value, ContainerfileError)
    assert (err.value.path, err.value.line) == ("ctx/Containerfile", 3)


def test_parse_instructions_needs_no_from() -> None:
    assert [i.command for i in parse_instructions("RUN a\nCMD b\n")] == ["RUN", "CMD"]


# --- exec and shell forms -------------------------------------------------------------------


@pytest.mark.parametrize("command", ["RUN", "CMD", "ENTRYPOINT"])
def test_exec_and_shell_forms(command: str) -> None:
    exec_form = one(f'{command} ["/bin/sh", "-c", "echo \\"hi\\""]')
    assert exec_form.json and exec_form.args == ("/bin/sh", "-c", 'echo "hi"')
    shell = one(f"{command} echo $HOME  'x'  ")
    assert not shell.json and shell.args == ("echo $HOME  'x'",)


@pytest.mark.parametrize(
    "text",
    [
        "CMD [sh, -c]",  # not JSON
        "CMD ['sh', '-c']",  # single quotes are not JSON
        'CMD ["sh", "-c"',  # unterminated
        'CMD ["sh",]',  # trailing comma
        "CMD [NaN]",  # Go's JSON has no NaN
        "CMD {}",
    ],
)
def test_json_looking_but_invalid_is_shell_form(text: str) -> None:
    ins = one(text)
    assert not ins.json
    assert ins.args == (text[4:],)


def test_text_after_a_json_array_is_ignored() -> None:
    # buildah 1.28 (Go's json.Decoder) reads the array and drops the rest
    ins = one('CMD ["a", "b"] extra')
    assert ins.json and ins.args == ("a", "b")


def test_json_array_must_hold_strings() -> None:
    assert error_of("FROM a\nCMD [1, 2]\n") == (
        "Containerfile:2: when using JSON array syntax, arrays must be comprised of strings only"
    )


def test_empty_json_array_and_empty_cmd() -> None:
    ins = one("ENTRYPOINT []")
    assert ins.json and ins.args == ()
    assert one("CMD").args == ()


def test_shell_must_be_json() -> None:
    assert one('SHELL ["/bin/bash", "-o", "pipefail", "-c"]').args == (
        "/bin/bash",
        "-o",
        "pipefail",
        "-c",
    )
    assert error_of("FROM a\nSHELL /bin/bash -c\n") == (
        "Containerfile:2: SHELL requires the arguments to be in JSON form"
    )


# --- RUN flags ---------------------------------------------------------------------------


def test_run_mounts_and_network() -> None:
    ins = one(
        """
        RUN --mount=type=cache,target=/root/.cache \\
            --mount=type=bind,source=.,target=/src \\
            --mount=type=secret,id=token --network=none make
        """
    )
    assert ins.flag_values("mount") == [
        "type=cache,target=/root/.cache",
        "type=bind,source=.,target=/src",
        "type=secret,id=token",
    ]
    assert ins.flag_value("network") == "none"
    assert ins.args == ("make",)


def test_flag_quotes_are_removed_and_double_dash_ends_flags() -> None:
    ins = one('RUN --mount="type=tmpfs,target=/t" -- --not-a-flag')
    assert ins.flags == (Flag(name="mount", value="type=tmpfs,target=/t"),)
    assert ins.args == ("--not-a-flag",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RUN --privileged true", "RUN only supports the --mount and --network flag"),
        ("RUN --mount true", "RUN only supports the --mount and --network flag"),
        (
            "COPY --chown 1:1 a b",
            "COPY only supports the --chmod=<permissions> --chown=<uid:gid> "
            "and the --from=<image|stage> flags",
        ),
        ("COPY --exclude=*.o a b", "COPY only supports the --chmod="),
        (
            "ADD --from=x a b",
            "ADD only supports the --chmod=<permissions> and the --chown=<uid:gid> flags",
        ),
        ("ADD --chmod=rwx a b", "Error parsing chmod rwx"),
        ("COPY --link=maybe a b", "expecting boolean value for flag link, not: maybe"),
        ("ENV --foo=bar a=b", "unknown flag: --foo: ENV takes no flags"),
        ("WORKDIR --x /w", "unknown flag: --x: WORKDIR takes no flags"),
    ],
)
def test_flag_errors(text: str, message: str) -> None:
    assert error_of("FROM a\n" + text + "\n").startswith("Containerfile:2: " + message)


# --- COPY / ADD ----------------------------------------------------------------------------


def test_copy_and_add_forms() -> None:
    copy = one("COPY --chown=app:app --chmod=0644 --link src/*.py lib/ /app/")
    assert copy.args == ("src/*.py", "lib/", "/app/")
    assert copy.flag_value("chown") == "app:app" and copy.flag_value("chmod") == "0644"
    assert Flag(name="link", value=None) in copy.flags
    add = one('ADD ["file with space.txt", "/dest dir/"]')
    assert add.json and add.args == ("file with space.txt", "/dest dir/")
    url = one("ADD https://example.com/a.tar.gz /tmp/")
    assert url.args == ("https://example.com/a.tar.gz", "/tmp/")
    assert one("COPY --chmod=$MODE a b").flag_value("chmod") == "$MODE"


@pytest.mark.parametrize("text", ["COPY onlyone", "ADD", "COPY --from=x a"])
def test_copy_needs_two_arguments(text: str) -> None:
    command = text.split()[0]
    assert error_of("FROM a\n" + text + "\n") == (
        f"Containerfile:2: {command} requires at least two arguments"
    )


# --- heredocs ----------------------------------------------------------------------------


def test_run_heredoc() -> None:
    parsed = cf(
        """
        FROM a
        RUN <<EOF
        set -e
          echo "$HOME"
        EOF
        CMD done
        """
    )
    run, cmd = parsed.stages[0].instructions
    assert run.args == ("<<EOF",)
    (doc,) = run.heredocs
    assert doc.name == "EOF" and doc.expand and not doc.chomp
    assert doc.content == 'set -e\n  echo "$HOME"\n'
    assert (run.line, run.end_line) == (2, 5)
    assert cmd.line == 6


def test_heredoc_dash_strips_tabs_and_quoted_delimiter_disables_expansion() -> None:
    text = (
        "FROM a\nRUN <<-\"END\" bash\n\t\techo $x\n\tindented\n  spaces\n\tEND\nRUN <<'Q'\n$y\nQ\n"
    )
    run, run2 = parse(text).stages[0].instructions
    (doc,) = run.heredocs
    assert doc.chomp and not doc.expand and doc.name == "END"
    assert doc.content == "echo $x\nindented\n  spaces\n"
    assert run.args == ('<<-"END" bash',)
    assert not run2.heredocs[0].expand and run2.heredocs[0].content == "$y\n"


def test_several_heredocs_on_one_line() -> None:
    text = "FROM a\nRUN cat <<A - 3<<B > out\nfirst\nA\nsecond\nB\nUSER x\n"
    run, user = parse(text).stages[0].instructions
    assert [(d.name, d.content, d.fd) for d in run.heredocs] == [
        ("A", "first\n", 0),
        ("B", "second\n", 3),
    ]
    assert user.line == 7


def test_copy_heredoc() -> None:
    text = "FROM a\nCOPY --chmod=0755 <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hello\nEOF\n"
    (copy,) = parse(text).stages[0].instructions
    assert copy.args == ("<<EOF", "/usr/local/bin/hello")
    # a "#" line inside a heredoc is content, not a comment
    assert copy.heredocs[0].content == "#!/bin/sh\necho hello\n"


def test_not_heredocs() -> None:
    # quoted, in the exec form, on other instructions, or not a word of its own
    assert one('RUN echo "<<EOF"').heredocs == ()
    assert one('RUN ["cat", "<<EOF"]').heredocs == ()
    assert one("CMD cat <<EOF").heredocs == ()
    assert one("RUN echo a<<b").heredocs == ()
    assert one("RUN echo $((1<<2))").heredocs == ()


def test_unterminated_heredoc() -> None:
    assert error_of("FROM a\nRUN <<EOF\necho hi\n") == (
        "Containerfile:2: unterminated heredoc: no line 'EOF' ends it"
    )


# --- ENV, LABEL, ARG -----------------------------------------------------------------------


def test_env_forms() -> None:
    ins = one('ENV A=1 B="two words" C=\\"x\\" D= E=${A:-z}')
    assert ins.pairs() == [
        ("A", "1"),
        ("B", '"two words"'),
        ("C", '\\"x\\"'),
        ("D", ""),
        ("E", "${A:-z}"),
    ]
    legacy = one("ENV PATH /usr/local/bin:$PATH  and more")
    assert legacy.pairs() == [("PATH", "/usr/local/bin:$PATH  and more")]
    cont = one("ENV A=1 \\\n    B=2")
    assert cont.pairs() == [("A", "1"), ("B", "2")]


def test_label_forms() -> None:
    ins = one('LABEL "com.example.vendor"="ACME Inc" version=1.0 description="a \\"b\\""')
    assert ins.pairs() == [
        ('"com.example.vendor"', '"ACME Inc"'),
        ("version", "1.0"),
        ("description", '"a \\"b\\""'),
    ]
    assert one("LABEL maintainer someone else").pairs() == [("maintainer", "someone else")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ENV", "ENV requires at least one argument"),
        ("ENV ONLYNAME", "ENV must have two arguments"),
        ("ENV A=1 B", 'Syntax error - can\'t find = in "B". Must be of the form: name=value'),
        ("LABEL", "LABEL requires at least one argument"),
        ("LABEL a=b c", 'Syntax error - can\'t find = in "c"'),
        ("ENV =x", "ENV names can not be blank"),
        ("ARG", "ARG requires at least one argument"),
    ],
)
def test_env_label_arg_errors(text: str, message: str) -> None:
    assert error_of("FROM a\n" + text + "\n").startswith("Containerfile:2: " + message)


def test_arg_forms() -> None:
    assert one("ARG NAME").args == ("NAME",)
    assert one("ARG NAME").arg_pairs() == [("NAME", None)]
    assert one("ARG NAME=default").args == ("NAME=default",)
    assert one("ARG EMPTY=").arg_pairs() == [("EMPTY", "")]
    ins = one('ARG A=1 B="x y" C=a=b')
    assert ins.args == ("A=1", 'B="x y"', "C=a=b")
    assert ins.arg_pairs() == [("A", "1"), ("B", '"x y"'), ("C", "a=b")]


def test_instruction_error_names_its_place() -> None:
    ins = parse("FROM a\n\nUSER x\n", "sub/Dockerfile").stages[0].instructions[0]
    err = ins.error("user x not found")
    assert str(err) == "sub/Dockerfile:3: user x not found"
    assert isinstance(err, InvalidArgument) and err.line == 3


def test_escape_directive_applies_to_heredoc_lines_and_words() -> None:
    text = "# escape=`\nFROM a\nRUN <<EOF cat `\n  > /out\nbody \\\nEOF\nENV A=x` y\n"
    run, env = parse(text).stages[0].instructions
    assert run.args == ("<<EOF cat   > /out",)
    assert run.heredocs[0].content == "body \\\n"  # heredoc bodies are never continued
    assert (run.line, run.end_line) == (3, 6)
    assert env.pairs() == [("A", "x` y")]


# --- the simple instructions ---------------------------------------------------------------


def test_simple_instructions() -> None:
    assert one("WORKDIR /path with space").args == ("/path with space",)
    assert one("USER 1000:1000").args == ("1000:1000",)
    assert one("USER $USER").args == ("$USER",)
    assert one("STOPSIGNAL SIGKILL").args == ("SIGKILL",)
    assert one("MAINTAINER Jane Doe <jane@example.com>").args == ("Jane Doe <jane@example.com>",)
    assert one("EXPOSE 80/tcp  443 $PORT").args == ("80/tcp", "443", "$PORT")
    assert one("VOLUME /data /logs").args == ("/data", "/logs")
    vol = one('VOLUME ["/data", "/var/log"]')
    assert vol.json and vol.args == ("/data", "/var/log")


@pytest.mark.parametrize("command", ["WORKDIR", "USER", "STOPSIGNAL", "MAINTAINER"])
def test_exactly_one_argument(command: str) -> None:
    assert error_of(f"FROM a\n{command}\n") == (
        f"Containerfile:2: {command} requires exactly one argument"
    )


@pytest.mark.parametrize("command", ["EXPOSE", "VOLUME", "ONBUILD", "HEALTHCHECK"])
def test_at_least_one_argument(command: str) -> None:
    assert error_of(f"FROM a\n{command}\n") == (
        f"Containerfile:2: {command} requires at least one argument"
    )


def test_empty_volume() -> None:
    assert error_of('FROM a\nVOLUME ["/a", " "]\n') == (
        "Containerfile:2: Volume specified can not be an empty string"
    )


def test_run_needs_a_command() -> None:
    assert error_of("FROM a\nRUN\n") == "Containerfile:2: RUN requires at least one argument"


# --- ONBUILD ------------------------------------------------------------------------------


def test_onbuild_wraps_an_instruction() -> None:
    ins = one("ONBUILD COPY --chown=1:1 . /app")
    assert ins.args == ("COPY --chown=1:1 . /app",)
    assert ins.trigger is not None
    assert ins.trigger.command == "COPY"
    assert ins.trigger.flag_value("chown") == "1:1"
    assert ins.trigger.args == (".", "/app")
    run = one('onbuild run ["echo", "x"]').trigger
    assert run is not None and run.json and run.args == ("echo", "x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM a", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD maintainer me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("ONBUILD BOGUS x", "unknown instruction: BOGUS"),
    ],
)
def test_onbuild_errors(text: str, message: str) -> None:
    assert error_of("FROM a\n" + text + "\n") == "Containerfile:2: " + message


# --- HEALTHCHECK --------------------------------------------------------------------------


def test_healthcheck_forms() -> None:
    ins = one(
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=1m30s --retries=3 "
        "CMD curl -f http://localhost/ || exit 1"
    )
    assert ins.args == ("CMD", "curl -f http://localhost/ || exit 1") and not ins.json
    assert [f.name for f in ins.flags] == ["interval", "timeout", "start-period", "retries"]
    exec_form = one('HEALTHCHECK CMD ["/bin/check", "--fast"]')
    assert exec_form.json and exec_form.args == ("CMD", "/bin/check", "--fast")
    assert one("HEALTHCHECK NONE").args == ("NONE",)
    assert one("healthcheck none").args == ("none",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("HEALTHCHECK NONE extra", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK RUN x", 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK --foo=1 CMD x", "flag provided but not defined: -foo"),
        ("HEALTHCHECK --interval=abc CMD x", 'time: invalid duration "abc"'),
        ("HEALTHCHECK --interval=10 CMD x", 'time: invalid duration "10"'),
        ("HEALTHCHECK --start-interval=1s CMD x", "flag provided but not defined: -start-inter"),
        ("HEALTHCHECK --timeout=-1s CMD x", 'Interval "timeout" must be positive'),
        ("HEALTHCHECK --interval=0s CMD x", 'Interval "interval" must be positive'),
        ("HEALTHCHECK --interval=0 CMD x", 'Interval "interval" must be positive'),
        ("HEALTHCHECK --retries=x CMD x", 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("HEALTHCHECK --retries=0 CMD x", "--retries must be at least 1 (not 0)"),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries must be at least 1 (not -1)"),
    ],
)
def test_healthcheck_errors(text: str, message: str) -> None:
    assert error_of("FROM a\n" + text + "\n").startswith("Containerfile:2: " + message)


@pytest.mark.parametrize(
    ("value", "nanos"),
    [
        ("", 0),
        ("10us", 10_000),
        ("30s", 30 * 10**9),
        ("1m30s", 90 * 10**9),
        ("1.5h", 5400 * 10**9),
        ("300ms", 300 * 10**6),
        (".5s", 5 * 10**8),
        ("1h2m3s4ms", (3723 * 1000 + 4) * 10**6),
    ],
)
def test_parse_duration(value: str, nanos: int) -> None:
    assert parse_duration(value) == nanos


# --- a real-world file ---------------------------------------------------------------------


def test_real_world_file() -> None:
    parsed = cf(
        r"""
        # syntax=docker/dockerfile:1
        ARG GO_VERSION=1.21
        FROM golang:${GO_VERSION}-alpine AS build
        WORKDIR /src
        ENV CGO_ENABLED=0 \
            GOOS=linux
        COPY go.mod go.sum ./
        RUN --mount=type=cache,target=/go/pkg/mod go mod download
        COPY . .
        RUN --mount=type=cache,target=/root/.cache/go-build \
            go build -o /out/app ./cmd/app

        FROM alpine:3.19
        LABEL org.opencontainers.image.source="https://example.com/repo" \
              org.opencontainers.image.licenses=MIT
        RUN apk add --no-cache ca-certificates && \
            adduser -D -u 10001 app
        COPY --from=build --chown=app:app /out/app /usr/local/bin/app
        USER app
        EXPOSE 8080/tcp
        VOLUME ["/data"]
        HEALTHCHECK --interval=10s CMD ["/usr/local/bin/app", "health"]
        STOPSIGNAL SIGTERM
        ENTRYPOINT ["/usr/local/bin/app"]
        CMD ["serve"]
        """,
        "Dockerfile",
    )
    assert parsed.syntax == "docker/dockerfile:1"
    build, final = parsed.stages
    assert build.name == "build" and build.base == "golang:${GO_VERSION}-alpine"
    assert [i.command for i in build.instructions] == [
        "WORKDIR",
        "ENV",
        "COPY",
        "RUN",
        "COPY",
        "RUN",
    ]
    assert build.instructions[1].pairs() == [("CGO_ENABLED", "0"), ("GOOS", "linux")]
    assert build.instructions[5].args == ("go build -o /out/app ./cmd/app",)
    assert build.instructions[5].original.startswith("RUN --mount=type=cache")
    assert [i.command for i in final.instructions] == [
        "LABEL",
        "RUN",
        "COPY",
        "USER",
        "EXPOSE",
        "VOLUME",
        "HEALTHCHECK",
        "STOPSIGNAL",
        "ENTRYPOINT",
        "CMD",
    ]
    assert final.from_instruction.line == 13
    assert final.instructions[-1].line == 25
    assert all(i.path == "Dockerfile" for i in final.instructions)


def test_every_instruction_is_known() -> None:
    assert {
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
        "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
        "WORKDIR",
    } == INSTRUCTIONS  # fmt: skip


# --- never crashes -----------------------------------------------------------------------

_line = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "FROM a",
            "FROM a AS b",
            "RUN x \\",
            "RUN <<EOF",
            "RUN <<-'E' x",
            "EOF",
            "\tE",
            "COPY <<EOF /d",
            "# escape=`",
            "# syntax=x",
            "ENV a=b c",
            "ENV a",
            "LABEL 'a b'=\"c",
            'CMD ["a", 1]',
            "CMD [",
            "HEALTHCHECK --interval=1s CMD x",
            "ONBUILD ONBUILD x",
            "ARG A=1",
            "",
            "  \\",
            "`",
            "# c",
        ]
    ),
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_line, max_size=15).map("\n".join))
def test_parser_never_crashes(text: str) -> None:
    try:
        parsed = parse(text, "Fuzzfile")
    except ContainerfileError as exc:
        assert str(exc).startswith("Fuzzfile")
        return
    lines = text.count("\n") + 1
    for stage in parsed.stages:
        for ins in (stage.from_instruction, *stage.instructions):
            assert 1 <= ins.line <= ins.end_line <= lines
            assert ins.command in INSTRUCTIONS
