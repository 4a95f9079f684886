"""The serving side never imports torch: importing every service module, loading a bundle, building
the app (and the Ray Serve deployment) and answering requests leaves torch out of sys.modules.
Run in a fresh interpreter, since other tests in this session may import torch themselves."""

import subprocess
import sys
import textwrap

from ._steer_helpers import REPO, labelled_bundle

SCRIPT = textwrap.dedent("""
    import importlib, pkgutil, sys
    import steerrec.service as service
    from steerrec.service.engine import SteeringEngine
    for module in pkgutil.walk_packages(service.__path__, "steerrec.service."):
        importlib.import_module(module.name)
    import steerrec.commands.serve
    from fastapi.testclient import TestClient
    from steerrec.service.app import SteerService, create_app
    from steerrec.service.deployment import build_app
    engine = SteeringEngine(sys.argv[1])
    client = TestClient(create_app(SteerService(engine)))
    user = engine.user_ids[0]
    assert client.get("/recommend", params={"user": user, "steer": "0:+1", "filter": "1",
                                            "promote": "2:+1"}).status_code == 200
    assert client.get("/explain", params={"user": user, "item": engine.item_ids[0]}).status_code == 200
    assert client.get("/neurons/3").status_code == 200
    build_app({"bundle": sys.argv[1]})
    loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    print("torch modules:", loaded)
    sys.exit(1 if loaded else 0)
""")


def test_serving_loads_no_torch():
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(labelled_bundle())], cwd=REPO,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "torch modules: []" in result.stdout
