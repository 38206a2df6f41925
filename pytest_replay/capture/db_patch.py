"""Replace one attribute of a driver class or module, and put it back exactly."""

from __future__ import annotations

from typing import Any, final


@final
class Patch:
    """One attribute swapped on ``owner``; :meth:`restore` undoes only our own swap.

    ``original`` is the raw attribute (a plain function for methods), so a
    wrapper can call it with ``self`` first.
    """

    __slots__ = ("name", "original", "own", "owner", "replacement")

    def __init__(self, owner: Any, name: str, replacement: Any) -> None:
        self.owner = owner
        self.name = name
        namespace = vars(owner)
        self.own = name in namespace
        self.original: Any = namespace[name] if self.own else getattr(owner, name)
        self.replacement = replacement

    def apply(self) -> Patch:
        """Swap the replacement in."""
        setattr(self.owner, self.name, self.replacement)
        return self

    def restore(self) -> None:
        """Put the original back, unless someone has since replaced our replacement."""
        if vars(self.owner).get(self.name) is not self.replacement:
            return
        if self.own:
            setattr(self.owner, self.name, self.original)
        else:
            delattr(self.owner, self.name)


def restore_all(patches: list[Patch]) -> None:
    """Undo ``patches`` in reverse order."""
    for patch in reversed(patches):
        patch.restore()
    patches.clear()
