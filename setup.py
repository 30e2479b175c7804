"""Builds the Cython hot paths: every smtpe/_speedups/*.pyx becomes an extension module."""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def speedups():
    sources = sorted(glob.glob(os.path.join("smtpe", "_speedups", "*.pyx")))
    return [Extension("smtpe._speedups." + os.path.splitext(os.path.basename(path))[0], [path],
                      extra_compile_args=["-O3"])
            for path in sources]


def lua_files():
    """The Lua prelude and examples ship inside the package as smtpe/lua/..."""
    found = []
    for path in glob.glob(os.path.join("lua", "**", "*.lua"), recursive=True):
        found.append(os.path.relpath(path, "lua"))
    return found


setup(
    packages=find_packages(include=["smtpe", "smtpe.*"]),
    package_dir={"smtpe": "smtpe"},
    package_data={"smtpe": ["lua/*.lua", "lua/examples/*.lua", "_speedups/*.pyx", "_speedups/*.pxd"]},
    ext_modules=cythonize(speedups(), language_level=3, quiet=True,
                          compiler_directives={"boundscheck": False, "wraparound": False}),
    zip_safe=False,
)
