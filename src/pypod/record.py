"""`@record`: frozen, slotted, keyword-only data classes that cost next to nothing to define.

Why not `dataclasses`: every `@dataclass` compiles generated source for `__init__`, `__eq__`,
`__repr__`, `__setattr__`... with `exec`; with ~50 classes on the path of `pypod-runtime run`
that alone took ~20 ms of a command whose whole budget (runc's time) is ~25 ms.  `record`
builds the same kind of class from a few shared, generic methods instead.  For type checkers it
is declared with `typing.dataclass_transform`, so mypy checks constructors as for a dataclass.

Supported: `field(default=..., default_factory=..., metadata=...)`, `frozen` (default) or
mutable, keyword-only (default) or positional construction, `fields()`, `replace()`,
`is_record()`.  Not supported: inheritance between records, ordering, `__post_init__`.
"""

from __future__ import annotations

from types import MappingProxyType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, TypeVar, dataclass_transform, overload

    T = TypeVar("T")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Field:
    """A declared field; what `fields()` returns (name, default, default_factory, metadata)."""

    __slots__ = ("default", "default_factory", "metadata", "name")

    def __init__(
        self, default: Any, default_factory: Any, metadata: Mapping[str, Any] | None
    ) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.metadata: Mapping[str, Any] = MappingProxyType(dict(metadata)) if metadata else _EMPTY

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot give both default and default_factory")
    return Field(default, default_factory, metadata)


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of frozen {type(self).__name__}")


def _frozen_delattr(self: object, name: str) -> None:
    raise AttributeError(f"cannot delete field {name!r} of frozen {type(self).__name__}")


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, n) for n in self.__record_names__)


def _eq(self: Any, other: object) -> bool:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: Any) -> int:
    return hash((self.__class__, _values(self)))


def _repr(self: Any) -> str:
    inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__record_names__)
    return f"{self.__class__.__qualname__}({inner})"


def _make_init(
    names: tuple[str, ...], specs: tuple[Field, ...], kw_only: bool
) -> Callable[..., None]:
    setter = object.__setattr__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            if kw_only:
                raise TypeError(f"{type(self).__name__}() takes keyword arguments only")
            if len(args) > len(names):
                raise TypeError(f"{type(self).__name__}() takes at most {len(names)} arguments")
            for name, value in zip(names, args, strict=False):
                if name in kwargs:
                    raise TypeError(f"{type(self).__name__}() got {name!r} twice")
                kwargs[name] = value
        for name, spec in zip(names, specs, strict=True):
            if name in kwargs:
                value = kwargs.pop(name)
            elif spec.default is not MISSING:
                value = spec.default
            elif spec.default_factory is not MISSING:
                value = spec.default_factory()
            else:
                raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
            setter(self, name, value)
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got unexpected arguments {sorted(kwargs)}")

    return __init__


def _record(
    cls: type[T] | None = None, /, *, frozen: bool = True, kw_only: bool = True
) -> type[T] | Callable[[type[T]], type[T]]:
    """`record` itself (typed for checkers below, through `dataclass_transform`)."""

    def build(c: type[T]) -> type[T]:
        annotations = c.__dict__.get("__annotations__", {})
        names = tuple(n for n in annotations if not n.startswith("__"))
        specs = []
        for name in names:
            value = c.__dict__.get(name, MISSING)
            spec = value if isinstance(value, Field) else Field(value, MISSING, None)
            spec.name = name
            specs.append(spec)
        ns = {
            k: v
            for k, v in c.__dict__.items()
            if k not in names and k not in ("__dict__", "__weakref__")
        }
        ns["__slots__"] = names
        ns["__record_names__"] = names
        ns["__record_fields__"] = tuple(specs)
        ns["__match_args__"] = names
        ns["__init__"] = _make_init(names, tuple(specs), kw_only)
        ns["__eq__"] = _eq
        ns["__repr__"] = _repr
        if frozen:
            ns["__setattr__"] = _frozen_setattr
            ns["__delattr__"] = _frozen_delattr
            ns["__hash__"] = _hash
        else:
            ns["__hash__"] = None
        new: type[T] = type(c.__name__, c.__bases__, ns)
        new.__qualname__ = c.__qualname__
        return new

    return build if cls is None else build(cls)


if TYPE_CHECKING:
    # (`typing` is not imported at run time: `record` is `_record` there; for type checkers
    # it is declared as a dataclass transform, so records' constructors are checked)
    @overload
    def record(cls: type[T], /) -> type[T]: ...
    @overload
    def record(*, frozen: bool = True, kw_only: bool = True) -> Callable[[type[T]], type[T]]: ...
    @dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field, Field))
    def record(
        cls: type[T] | None = None, /, *, frozen: bool = True, kw_only: bool = True
    ) -> type[T] | Callable[[type[T]], type[T]]:
        return _record(cls, frozen=frozen, kw_only=kw_only)

else:
    record = _record


def is_record(obj: object) -> bool:
    return hasattr(type(obj), "__record_fields__") and not isinstance(obj, type)


def fields(obj: object) -> tuple[Field, ...]:
    cls = obj if isinstance(obj, type) else type(obj)
    result: tuple[Field, ...] = cls.__record_fields__  # type: ignore[attr-defined]
    return result


def replace(obj: T, **changes: Any) -> T:
    """A copy of `obj` with some fields changed (as dataclasses.replace)."""
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no fields {sorted(unknown)}")
    values.update(changes)
    return type(obj)(**values)
