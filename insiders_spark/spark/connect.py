"""A session on a Spark Connect server (``insiders-spark run --remote sc://HOST:PORT``, or
``SPARK_REMOTE``): checked before the run starts, so that a server the job cannot use ends the
run in one line that names the endpoint and the problem.

Four checks, cheapest first:

1. the endpoint accepts a connection (a TCP connect, ``PROBE_SECONDS`` at most: the Connect
   client itself retries an unreachable server for minutes before it gives up);
2. it speaks gRPC, as the client will connect (TLS with ``use_ssl`` or a token), within
   ``PROBE_SECONDS`` (a call to a port that does not waits without end);
3. it answers as a Spark Connect server, of Spark ``MIN_SERVER_VERSION`` or later (MLlib over
   Connect), asked once, without the client's retries;
4. when the run needs Python on the server (the synthetic log's generator, the backtest's CLV
   reference: ``python_modules``), one row through a Python UDF imports what they need there.
   Before that, the package goes to the session as a Python artifact (``ship_package``), so the
   server's Python needs numpy, pandas, pyarrow and scipy, not this package.

Only ``spark.sql.*`` settings reach a remote session: the rest (master, memory, the driver's JVM
options) belong to whoever runs the server.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import socket
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from insiders_spark.core.errors import ConfigError

if TYPE_CHECKING:  # imported when used: the command line reads --remote before pyspark loads
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

SCHEME = "sc"
DEFAULT_PORT = 15002  # Spark Connect's
REMOTE_VARIABLE = "SPARK_REMOTE"
PROBE_SECONDS = 10.0
GRPC_VERBOSITY = "GRPC_VERBOSITY"
MIN_SERVER_VERSION = (4, 0)
SESSION_SETTINGS = "spark.sql."  # the settings a client may change on its own session
PACKAGE = "insiders_spark"
# Python the server runs for the job, by what the run does
SYNTHETIC_MODULES = ("insiders_spark.storage.synthetic",)  # mapInArrow: numpy, pyarrow
BACKTEST_MODULES = ("insiders_spark.evaluation.clv",)  # a pandas_udf: pandas, pyarrow, scipy
_ENDPOINTS: dict[str, str] = {}  # session id -> the endpoint it was opened on (for the manifest)


class SparkConnectError(RuntimeError):
    """The Spark Connect server cannot run the job: unreachable, or lacking what the job needs."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"Spark Connect server {endpoint(url)}: {' '.join(problem.split())}")


def remote_url(flag: str | None, environ: Mapping[str, str]) -> str | None:
    """The Connect URL of a run: ``--remote``, else ``SPARK_REMOTE``, else None (a classic session)."""
    url = flag or environ.get(REMOTE_VARIABLE) or None
    if url is not None and urlsplit(url).scheme != SCHEME:
        source = "--remote" if flag else REMOTE_VARIABLE
        raise ConfigError(f"{source} {url!r}: expected a Spark Connect URL, sc://HOST:PORT")
    return url


def endpoint(url: str) -> str:
    """``sc://host:port`` of a Connect URL, without its parameters (a token never reaches a log)."""
    parts = urlsplit(url)
    return f"{SCHEME}://{parts.hostname or 'localhost'}:{parts.port or DEFAULT_PORT}"


def is_connect(spark: SparkSession) -> bool:
    """Whether ``spark`` is a Spark Connect client's session (no JVM in this process)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def endpoint_of(spark: SparkSession) -> str | None:
    """The endpoint a session of ``connect_session`` was opened on; None for any other session."""
    return _ENDPOINTS.get(spark.session_id) if is_connect(spark) else None


def python_modules(config) -> tuple[str, ...]:
    """What the run imports in Python on the server: nothing when it reads files and has no backtest."""
    synthetic = not (config.input.path or config.input.table)
    return (SYNTHETIC_MODULES if synthetic else ()) + (BACKTEST_MODULES if config.backtest.horizon_days else ())


def connect_session(url: str, settings: Mapping[str, str], *, modules: Sequence[str] = ()) -> SparkSession:
    """A session on the Connect server at ``url``, checked; ``settings``' ``spark.sql.*`` applied."""
    os.environ.setdefault(GRPC_VERBOSITY, "ERROR")  # gRPC's own INFO lines (a TLS handshake's) stay off stderr
    from pyspark.sql import SparkSession

    _probe_endpoint(url)
    _probe_grpc(url)
    spark = SparkSession.builder.remote(url).getOrCreate()  # no settings yet: nothing is sent before the checks
    try:
        version = _server_version(spark, url)
        log.info("Spark Connect server %s: Spark %s", endpoint(url), version)
        for key, value in settings.items():
            if key.startswith(SESSION_SETTINGS):
                spark.conf.set(key, value)
        if modules:
            ship_package(spark)
            missing = _import_errors(spark, url, modules)
            if missing:
                raise SparkConnectError(url, f"its Python cannot import what the run needs: {missing}")
    except BaseException:
        spark.stop()
        raise
    _ENDPOINTS[spark.session_id] = endpoint(url)
    left = sorted(key for key in settings if not key.startswith(SESSION_SETTINGS))
    if left:
        log.info("left to the Connect server: %s", ", ".join(left))
    return spark


def _probe_endpoint(url: str) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or DEFAULT_PORT
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            pass
    except TimeoutError:
        raise SparkConnectError(url, f"unreachable (no answer in {PROBE_SECONDS:.0f} s)") from None
    except socket.gaierror as error:
        raise SparkConnectError(url, f"unreachable (the host name does not resolve: {error.strerror})") from None
    except OSError as error:
        raise SparkConnectError(url, f"unreachable ({error.strerror or error})") from None


def _probe_grpc(url: str) -> None:
    import grpc
    from pyspark.sql.connect.client import DefaultChannelBuilder

    channel = DefaultChannelBuilder(url).toChannel()
    try:
        grpc.channel_ready_future(channel).result(timeout=PROBE_SECONDS)
    except grpc.FutureTimeoutError:
        problem = f"no gRPC answer in {PROBE_SECONDS:.0f} s (not a Spark Connect port, or TLS expected: use_ssl=true?)"
        raise SparkConnectError(url, problem) from None
    finally:
        channel.close()


def _server_version(spark: SparkSession, url: str) -> str:
    """The server's Spark version, asked once without the client's retries; too old is an error."""
    client = spark.client
    policies = client.get_retry_policies()
    client.set_retry_policies([])
    try:
        version = spark.version
    except Exception as error:
        raise SparkConnectError(url, f"no Spark Connect answer ({_reason(error)})") from None
    finally:
        client.set_retry_policies(policies)
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if numbers < MIN_SERVER_VERSION:
        needed = ".".join(map(str, MIN_SERVER_VERSION))
        raise SparkConnectError(url, f"Spark {version}; the job needs {needed} or later (MLlib over Spark Connect)")
    return version


def package_zip() -> tuple[str, bytes]:
    """This package's modules as a zip for the server's Python, named after their content."""
    root = Path(__file__).resolve().parents[1]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(root.rglob("*.py")):
            info = zipfile.ZipInfo(f"{PACKAGE}/{path.relative_to(root).as_posix()}", date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    data = buffer.getvalue()
    return f"{PACKAGE}-{hashlib.sha256(data).hexdigest()[:16]}.zip", data


def ship_package(spark: SparkSession) -> str:
    """Add the package to the session's Python path on the server (``addArtifacts``, pyfile)."""
    name, data = package_zip()
    with tempfile.TemporaryDirectory(prefix="insiders-spark-connect-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        spark.addArtifacts(str(path), pyfile=True)
    log.info("shipped %s (%s KiB) to the session's Python path", name, f"{len(data) / 1024:,.0f}")
    return name


def _import_errors(spark: SparkSession, url: str, modules: Sequence[str]) -> str:
    """Import ``modules`` in one Python UDF on the server: what failed, or "" when all did."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    wanted = tuple(modules)

    def probe(_: int) -> str:  # runs on the server: stdlib only, defined here so that it pickles by value
        import importlib

        failed = []
        for name in wanted:
            try:
                importlib.import_module(name)
            except Exception as error:
                failed.append(f"{name} ({type(error).__name__}: {error})")
        return "; ".join(failed)

    try:
        return spark.range(1).select(F.udf(probe, T.StringType(), useArrow=False)("id")).first()[0]
    except Exception as error:
        raise SparkConnectError(url, f"its Python workers failed: {_reason(error)}") from None


def _reason(error: BaseException) -> str:
    """The first line of an error's message (a Connect error's without its server stack trace; a
    bare gRPC error's status and details)."""
    if hasattr(error, "code") and hasattr(error, "details"):  # grpc.RpcError
        return f"{error.code().name}: {error.details()}"
    message = error.getMessage() if hasattr(error, "getMessage") else str(error)
    if message.startswith("<_InactiveRpcError") and hasattr(error, "getGrpcStatusCode"):  # a wrapped gRPC error
        details = re.search(r'details = "(?P<details>[^"]*)"', message)
        return f"{error.getGrpcStatusCode().name}: {details['details'] if details else 'no details'}"
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
