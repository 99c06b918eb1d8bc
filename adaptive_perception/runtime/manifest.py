"""The base of every exported model folder's ``manifest.json``: one way to read and write it.

Each family's manifest is a dataclass of its own (what its graphs are, how a frame
becomes their input, its INT8 copies, where the weights came from); what they share
is here: the file name, the check that the folder holds this family's format (an
old or foreign folder fails with a message, not a KeyError later), the conversion
of a malformed file into a ValueError naming it, the check that every graph file
named is there, and writing the file whole.

A family subclass sets ``FORMAT`` (the format string its ``format`` field must
equal) and ``KIND`` (what to call it in messages), and overrides ``from_json``
(nested records, integer keys JSON turned into strings), ``to_json`` and ``check``
as its format needs. The JSON layout is the family's: this base adds no field, so
the manifests already shipped in models/ load unchanged.
"""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Iterable, TypeVar

MANIFEST = 'manifest.json'

M = TypeVar('M', bound='ModelManifest')
JsonObject = dict[str, Any]  # a manifest as json.loads gives it and json.dumps takes it


class ModelManifest:
    """Reading, checking and writing ``manifest.json``; subclasses are dataclasses."""

    FORMAT: ClassVar[str]
    KIND: ClassVar[str] = 'exported model'
    # Exceptions of ``from_json`` that mean "this file is malformed" (a ValueError naming it).
    MALFORMED: ClassVar[tuple] = (KeyError, TypeError, ValueError)

    @classmethod
    def path(cls, model_dir) -> Path:
        """Where the manifest of ``model_dir`` is."""
        return Path(model_dir) / MANIFEST

    @classmethod
    def read_json(cls, model_dir) -> JsonObject:
        """Return the manifest's JSON, checked to be this family's format; ValueError if not."""
        path = cls.path(model_dir)
        if not path.is_file():
            raise ValueError(cls.missing(path, model_dir))
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f'cannot read the {cls.KIND} manifest {path}: {error}') from None
        if not isinstance(data, dict) or data.get('format') != cls.FORMAT:
            found = data.get('format') if isinstance(data, dict) else None
            raise ValueError(f'{path}: format {found!r}, expected {cls.FORMAT!r}')
        return data

    @classmethod
    def missing(cls, path: Path, model_dir) -> str:
        """Say that ``model_dir`` has no manifest (a family may word it for its users)."""
        return f'{path} not found: not an {cls.KIND} directory'

    @classmethod
    def from_json(cls: type[M], data: JsonObject) -> M:
        """Build the manifest from its JSON (a subclass rebuilds nested records)."""
        return cls(**data)

    def to_json(self) -> JsonObject:
        """Return the manifest as JSON values (a subclass turns keys JSON lacks into text)."""
        return asdict(self)

    def check(self, model_dir) -> None:
        """Raise ValueError if the folder or the values break the format (subclass rules)."""

    @classmethod
    def load(cls: type[M], model_dir) -> M:
        """Read and check ``manifest.json``; ValueError says what is wrong."""
        path = cls.path(model_dir)
        data = cls.read_json(model_dir)
        try:
            manifest = cls.from_json(data)
        except cls.MALFORMED as error:
            raise ValueError(f'{path}: malformed {cls.KIND} manifest: {error}') from None
        manifest.check(model_dir)
        return manifest

    def save(self, model_dir) -> Path:
        """Write ``manifest.json`` into ``model_dir``, whole: a stopped run leaves the old one."""
        path = self.path(model_dir)
        partial = path.with_name(path.name + '.partial')
        partial.write_text(json.dumps(self.to_json(), indent=1) + '\n')
        partial.replace(path)
        return path

    @classmethod
    def require_files(cls, model_dir, files: Iterable[str]) -> None:
        """Raise ValueError naming the first graph file the folder lacks."""
        for file in files:
            if not (Path(model_dir) / file).is_file():
                raise ValueError(f'{cls.path(model_dir)}: graph {file} is missing')
