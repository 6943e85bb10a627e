"""vulnwatch.lazy.LazyMap: an extension point's map, imported on first lookup."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vulnwatch.lazy import LazyMap


def test_values_are_imported_on_first_lookup_and_read_as_a_dict():
    code = ("import sys\n"
            "from vulnwatch.lazy import LazyMap\n"
            "m = LazyMap('email', {'parser': '.parser:Parser', 'od': 'collections:OrderedDict'})\n"
            "assert 'email.parser' not in sys.modules and list(m) == ['parser', 'od'] and 'parser' in m\n"
            "assert len(m) == 2 and 'email.parser' not in sys.modules\n"
            "import email.parser, collections\n"
            "assert m['parser'] is email.parser.Parser and m.get('od') is collections.OrderedDict\n"
            "assert dict(m) == {'parser': email.parser.Parser, 'od': collections.OrderedDict} == {**m}\n"
            "assert m.items() == [('parser', email.parser.Parser), ('od', collections.OrderedDict)]\n"
            "assert m.get('nope', 1) == 1\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_a_bad_name_fails_on_its_lookup_not_before():
    m = LazyMap("vulnwatch", {"lazy": ".lazy:LazyMap", "broken": ".lazy:NoSuchThing"})
    assert m["lazy"] is LazyMap and "broken" in m
    with pytest.raises(AttributeError):
        m["broken"]
    with pytest.raises(KeyError):
        m["absent"]
    with pytest.raises(ValueError):
        LazyMap("vulnwatch", {"x": "no-colon"})


def test_a_package_gives_its_modules_names_on_first_access():
    """``vulnwatch.walker`` and ``vulnwatch.catalogers`` through :func:`vulnwatch.lazy.exports`: one
    name loads its own module, not the package's others; ``from ... import`` and unknown names
    behave as with plain imports."""
    code = ("import sys\n"
            "from vulnwatch.walker import LayerLimits\n"
            "from vulnwatch.catalogers import CatalogLimits, CATALOGERS\n"
            "assert 'vulnwatch.walker.limits' in sys.modules and 'vulnwatch.walker.cache' not in sys.modules\n"
            "assert not [m for m in sys.modules if m.startswith('vulnwatch.catalogers.') and\n"
            "            m != 'vulnwatch.catalogers.interface']\n"
            "assert list(CATALOGERS) == ['dpkg', 'apk', 'rpm', 'python', 'npm', 'go', 'java']\n"
            "import vulnwatch.walker as w, vulnwatch.catalogers as c\n"
            "from vulnwatch.walker.cache import walk_cached\n"
            "assert w.walk_cached is walk_cached and c.DpkgCataloger is CATALOGERS['dpkg']\n"
            "assert CATALOGERS['go'].name == 'go'\n"
            "try:\n"
            "    w.nothing\n"
            "except AttributeError as e:\n"
            "    assert 'vulnwatch.walker' in str(e)\n"
            "else:\n"
            "    raise AssertionError('no error')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
