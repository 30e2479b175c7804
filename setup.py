"""Builds the Cython hot paths: every smtpe/_speedups/*.pyx becomes an extension module."""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def speedups():
    sources = sorted(glob.glob(os.path.join("smtpe", "_speedups", "*.pyx")))
    return [Extension("smtpe._speedups." + os.path.splitext(os.path.basename(path))[0], [path],
                      extra_compile_args=["-O3"])
            for path in sources]


class build_py_with_lua(build_py):
    """The Lua prelude and examples live in lua/ at the root; installed, they sit inside the
    package as smtpe/lua/ (where smtpe.engine looks first)."""

    def run(self):
        super().run()
        for path in glob.glob(os.path.join(HERE, "lua", "**", "*.lua"), recursive=True):
            target = os.path.join(self.build_lib, "smtpe", "lua", os.path.relpath(path, os.path.join(HERE, "lua")))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self.copy_file(path, target)


setup(
    packages=find_packages(include=["smtpe", "smtpe.*"]),
    package_dir={"smtpe": "smtpe"},
    package_data={"smtpe": ["_speedups/*.pyx", "_speedups/*.pxd"]},
    cmdclass={"build_py": build_py_with_lua},
    ext_modules=cythonize(speedups(), language_level=3, quiet=True,
                          compiler_directives={"boundscheck": False, "wraparound": False}),
    zip_safe=False,
)
