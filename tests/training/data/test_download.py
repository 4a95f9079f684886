import functools
import gzip
import hashlib
import http.server
import threading
import zipfile

import pytest
from steerrec.training.data import LOADERS, load_dataset
from steerrec.training.data import download as dl
from steerrec.training.data.schema import DataError

MOVIES = "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Heat (1995)::Action\n"
RATINGS = "1::1::5::978300760\n2::2::3::978300761\n"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests = 0

    def do_GET(self):
        type(self).requests += 1
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    _Quiet.requests = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def _publish(monkeypatch, url, path, archive="zip", dataset="ml-1m", algorithm="sha256", checksum=None):
    """Makes DOWNLOADS hold only "toy": ``path`` served from ``url``, extracting to folder "toy"."""
    digest = checksum or f"{algorithm}:{hashlib.new(algorithm, path.read_bytes()).hexdigest()}"
    spec = dl.DownloadSpec(
        url=f"{url}/{path.name}", checksum=digest, archive=archive, directory="toy", dataset=dataset, license="test"
    )
    monkeypatch.setattr(dl, "DOWNLOADS", {"toy": spec})
    return spec


def test_download_verifies_extracts_and_loads(server, tmp_path, monkeypatch):
    www, url = server
    _publish(monkeypatch, url, _zip(www / "toy.zip", {"toy/movies.dat": MOVIES, "toy/ratings.dat": RATINGS}))
    dest = tmp_path / "data"
    folder = dl.download("toy", dest, progress=False)
    assert folder == dest / "toy"
    data = load_dataset(dl.dataset_for_download("toy"), folder)
    assert (data.n_users, data.n_items, data.items.titles[0]) == (2, 2, "Toy Story (1995)")
    assert sorted(p.name for p in dest.iterdir()) == ["toy"]  # no temporary files left
    assert dl.download("toy", dest, progress=False) == folder and _Quiet.requests == 1  # verified: not fetched again


def test_flat_zip_and_plain_file_with_md5(server, tmp_path, monkeypatch):
    www, url = server
    flat = _zip(www / "flat.zip", {"movies.dat": MOVIES, "ratings.dat": RATINGS})
    _publish(monkeypatch, url, flat, archive="zip-flat", algorithm="md5")
    assert load_dataset("ml-1m", dl.download("toy", tmp_path / "a", progress=False)).n_users == 2
    review = b'{"reviewerID": "U1", "asin": "B1", "overall": 4.0, "unixReviewTime": 1441324800}\n'
    (www / "R_5.json.gz").write_bytes(gzip.compress(review))
    _publish(monkeypatch, url, www / "R_5.json.gz", archive="file", dataset="amazon")
    folder = dl.download("toy", tmp_path / "b", progress=False)
    assert (folder / "R_5.json.gz").is_file()
    assert load_dataset(dl.dataset_for_download("toy"), folder).item_ids == ["B1"]


def test_wrong_checksum_leaves_nothing(server, tmp_path, monkeypatch):
    www, url = server
    archive = _zip(www / "toy.zip", {"toy/movies.dat": MOVIES, "toy/ratings.dat": RATINGS})
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    _publish(monkeypatch, url, archive, checksum="sha256:" + "0" * 64)
    dest = tmp_path / "data"
    with pytest.raises(DataError) as caught:
        dl.download("toy", dest, progress=False)
    assert "sha256:" + "0" * 64 in str(caught.value) and f"sha256:{actual}" in str(caught.value)
    assert list(dest.iterdir()) == []


def test_http_error_leaves_nothing(server, tmp_path, monkeypatch):
    www, url = server
    _publish(monkeypatch, url, _zip(www / "gone.zip", {"toy/movies.dat": MOVIES}))
    (www / "gone.zip").unlink()
    with pytest.raises(DataError, match=r"gone\.zip: download failed"):
        dl.download("toy", tmp_path / "data", progress=False)
    assert list((tmp_path / "data").iterdir()) == []


def test_zip_slip_is_refused(server, tmp_path, monkeypatch):
    www, url = server
    evil = _zip(www / "evil.zip", {"toy/movies.dat": MOVIES, "../evil": "gotcha"})
    _publish(monkeypatch, url, evil, archive="zip-flat")
    dest = tmp_path / "data"
    with pytest.raises(DataError, match=r"refusing member '\.\./evil'"):
        dl.download("toy", dest, progress=False)
    assert list(dest.iterdir()) == []
    assert not list(tmp_path.rglob("evil"))


def test_existing_unverified_folder_is_not_overwritten(server, tmp_path, monkeypatch):
    www, url = server
    _publish(monkeypatch, url, _zip(www / "toy.zip", {"toy/movies.dat": MOVIES}))
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "mine.txt").write_text("keep")
    with pytest.raises(DataError, match="already exists but is not a verified download"):
        dl.download("toy", tmp_path, progress=False)
    assert (tmp_path / "toy" / "mine.txt").read_text() == "keep" and _Quiet.requests == 0


def test_registry():
    assert set(dl.DOWNLOADS) == {"ml-1m", "ml-100k", "lastfm-2k", "amazon-fashion-5core"}
    for name, spec in dl.DOWNLOADS.items():
        algorithm, _, digest = spec.checksum.partition(":")
        assert len(digest) == {"sha256": 64, "md5": 32}[algorithm], name
        assert dl.dataset_for_download(name) in LOADERS
    assert dl.dataset_for_download("amazon-fashion-5core") == "amazon"
    with pytest.raises(DataError, match="unknown download 'nope'"):
        dl.dataset_for_download("nope")
