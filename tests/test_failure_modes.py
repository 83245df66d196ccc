"""scripts/failure_modes.py: outcomes split by where the ego ended against its own recording."""


import pytest

from tests.app.conftest import scene, scene_dir, scene_workdir  # noqa: F401  (fixtures of the app tests)
from tests.app.test_drive import runs  # noqa: F401  (tiny-world and tiny-policy as real checkpoints)
from tests.scripts import load_script


def script():
    return load_script("failure_modes")


def rows(text: str) -> dict[tuple[str, str], list[str]]:
    body = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in body]
    return {(c[0], c[1]): c[2:] for c in cells}


def test_the_recording_ends_on_itself_and_every_episode_is_counted(runs, scene, capsys):  # noqa: F811
    episodes = 6
    assert script().main(["--workdir", str(runs), "--scene", scene.meta.name, "--split", "test", "--controllers",
                          "human", "no_action", "--policies", "tiny-policy", "--episodes", str(episodes)]) == 0
    table = rows(capsys.readouterr().out)
    human = table[("human", "arrived")]                  # the recording replayed: it arrives, exactly on itself
    assert int(human[0]) == episodes and abs(float(human[4])) < 0.05
    for name in ("no_action", "tiny-policy"):
        counted = [v for (controller, _), v in table.items() if controller == name]
        assert sum(int(v[0]) for v in counted) == episodes
        assert all(int(v[1]) + int(v[2]) + int(v[3]) == int(v[0]) for v in counted)


def test_bad_input_is_refused(scene_workdir, scene):  # noqa: F811
    with pytest.raises(SystemExit):
        script().main(["--workdir", str(scene_workdir), "--scene", "no-such-scene"])
    with pytest.raises(SystemExit):
        script().main(["--workdir", str(scene_workdir), "--scene", scene.meta.name, "--policies", "no-such-run"])
