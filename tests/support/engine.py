"""A bare Engine (no worker, no sockets) for tests of the Lua namespaces."""
import io

from smtpe.engine import Engine
from smtpe.log import Log
from smtpe._speedups.loop import Loop
from smtpe.options import Options


def engine_with_script(tmp_path, script):
    """An Engine that loaded `script` (bytes) from tmp_path/policy.lua, logging to memory."""
    path = tmp_path / "policy.lua"
    path.write_bytes(script)
    return Engine(Options(), Loop(), Log(stream=io.StringIO()), script=str(path))


def lua(engine, source):
    """Run a chunk of Lua in the engine's master state; -> what it returns."""
    return engine.lua.execute(source.encode() if isinstance(source, str) else source)
