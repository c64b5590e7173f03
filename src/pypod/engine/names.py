"""Names for containers nobody named: `adjective_surname`, as podman (and docker) make them."""

from __future__ import annotations

import os

_ADJECTIVES = (
    "admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold "
    "boring brave busy charming clever cool compassionate competent condescending confident "
    "cranky crazy dazzling determined distracted dreamy eager ecstatic elastic elated elegant "
    "eloquent epic exciting fervent festive flamboyant focused friendly frosty funny gallant "
    "gifted goofy gracious great happy hardcore heuristic hopeful hungry infallible inspiring "
    "intelligent interesting jolly jovial keen kind laughing loving lucid magical modest musing "
    "mystifying naughty nervous nice nifty nostalgic objective optimistic peaceful pedantic "
    "pensive practical priceless quirky quizzical recursing relaxed reverent romantic sad "
    "serene sharp silly sleepy stoic strange stupefied suspicious sweet tender thirsty trusting "
    "unruffled upbeat vibrant vigilant vigorous wizardly wonderful xenodochial youthful zealous "
    "zen"
).split()
_SURNAMES = (
    "agnesi albattani allen almeida archimedes ardinghelli aryabhata austin babbage banach "
    "bardeen bartik bassi bell benz bhabha bhaskara black blackwell bohr booth borg bose "
    "boyd brahmagupta brattain brown carson cerf chandrasekhar chaplygin chatelet clarke "
    "colden cori cray curie darwin davinci dijkstra dubinsky easley edison einstein elion "
    "engelbart euclid euler faraday feistel fermat fermi feynman franklin gagarin galileo "
    "gates gauss germain goldberg goldstine goldwasser golick goodall hamilton hawking "
    "heisenberg hellman hermann hertz hodgkin hofstadter hopper hugle hypatia jackson "
    "jang jennings jepsen johnson joliot jones kalam kare keller kepler khorana kilby kirch "
    "knuth kowalevski lalande lamarr lamport leakey leavitt lewin lichterman liskov lovelace "
    "lumiere mahavira margulis matsumoto maxwell mayer mccarthy mcclintock mclean mcnulty "
    "meitner mendel mendeleev merkle mestorf mirzakhani moore morse murdock napier nash "
    "neumann newton nightingale nobel noether northcutt noyce panini pare pascal pasteur "
    "payne perlman pike poincare poitras ptolemy raman ramanujan ride ritchie roentgen "
    "rosalind saha sammet shamir shannon shaw shirley shockley sinoussi snyder spence "
    "stonebraker sutherland swanson swartz swirles taussig tesla thompson torvalds turing "
    "varahamihira visvesvaraya volhard wescoff wiles williams wilson wing wozniak wright yalow "
    "yonath"
).split()

#: podman's rule for container, pod and volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, checked by
#: hand (compiling it cost ~70 us of every `create`)
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | {"_", ".", "-"}


def is_valid_name(name: str) -> bool:
    """Whether all of `name` follows podman's rule for names."""
    return bool(name) and name[0] in _NAME_FIRST and all(c in _NAME_REST for c in name)


def random_name() -> str:
    a, b, c = os.urandom(3)
    return f"{_ADJECTIVES[(a << 8 | c) % len(_ADJECTIVES)]}_{_SURNAMES[b % len(_SURNAMES)]}"


def check_name(name: str) -> None:
    from pypod.errors import InvalidArgument

    # (as the pattern `^...$` this checked before: `$` lets a final newline through)
    if not is_valid_name(name.removesuffix("\n")):
        raise InvalidArgument("names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*: invalid argument")
