"""Retrying a request to object storage: what kind of transient failure an exception
is (`classify`), jittered exponential backoff, and `attempts`, which calls one request
until it is answered, with the typed errors that end it.

* throttling (HTTP 503 SlowDown, 429) is retried with jittered exponential
  backoff, `THROTTLE_ATTEMPTS` attempts, then `ThrottledError` names it;
* a cut connection is retried at most `RESUMES` times, then `InterruptedReadError`;
* credentials rejected after the service accepted them in this process are
  `CredentialsExpiredError`.
"""

from __future__ import annotations

import random
import time

from od_guard import errors
from od_guard.checkpoint import remote_fs
from od_guard.checkpoint.remote_errors import CredentialsExpiredError
from od_guard.checkpoint.remote_errors import InterruptedReadError
from od_guard.checkpoint.remote_errors import RemoteStorageError
from od_guard.checkpoint.remote_errors import ThrottledError
from od_guard.checkpoint.remote_errors import credentials_fix
from od_guard.checkpoint.remote_errors import detail
from od_guard.checkpoint.remote_errors import scheme

RESUMES = 5  # cuts resumed per read (or retried per metadata request)
THROTTLE_ATTEMPTS = 6
THROTTLE_BACKOFF = (0.25, 4.0)  # first and largest backoff (s), each jittered to [d/2, d]
CUT_BACKOFF = (0.05, 1.0)
CUT_FIX = (
  "The network or the endpoint drops connections mid-answer (a proxy, a load balancer, an "
  "unstable link): check it, then run od-guard again."
)

THROTTLED, CUT, CREDENTIALS, CHANGED = "throttled", "cut", "credentials", "changed"
_THROTTLE_CODES = frozenset(
  {"SlowDown", "Throttling", "ThrottlingException", "TooManyRequests", "RequestLimitExceeded",
   "RequestThrottled", "rateLimitExceeded", "userRateLimitExceeded"}
)  # fmt: skip
_CREDENTIAL_CODES = frozenset(
  {"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "RequestExpired",
   "InvalidAccessKeyId", "InvalidToken", "InvalidClientTokenId", "SignatureDoesNotMatch",
   "AuthFailure", "authError"}
)  # fmt: skip
# Exceptions (by class name, any base) of a connection or body cut mid-answer
# (_CutShort: a body that ended before the bytes its range asked for).
_CUT_NAMES = frozenset(
  {"ClientPayloadError", "ContentLengthError", "ServerDisconnectedError", "ClientOSError",
   "ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError", "IncompleteReadError",
   "ResponseStreamingError", "IncompleteRead", "ConnectionClosedError", "ProtocolError",
   "ProxyError", "_CutShort"}
)  # fmt: skip
# ... unless the connection was never made (said as EndpointUnreachableError, not retried).
# botocore says EndpointConnectionError for both: what it wraps tells them apart.
_NO_CONNECTION = frozenset(
  {"ClientConnectorError", "ConnectTimeoutError", "ConnectionRefusedError", "gaierror"}
)
# Protocols whose service answered a request in this process.
accepted: set[str] = set()


def _chain(e: BaseException) -> list[BaseException]:
  out: list[BaseException] = []
  while e is not None and len(out) < 8 and e not in out:
    out.append(e)
    e = e.__cause__ or e.__context__
  return out


def _answer(e: BaseException) -> tuple[int | None, str]:
  """(HTTP status, the service's error code) of a client exception, where it has them."""
  response = getattr(e, "response", None)
  if isinstance(response, dict):  # botocore's ClientError
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return status, str((response.get("Error") or {}).get("Code") or "")
  if type(e).__name__ == "HttpError" and isinstance(getattr(e, "code", None), int):  # gcsfs
    said = getattr(e, "_error_response", None) or {}
    reasons = [x.get("reason", "") for x in said.get("errors", ()) if isinstance(x, dict)]
    return e.code, next((r for r in reasons if r), "")
  status = getattr(e, "status", None)
  if isinstance(status, int) and type(e).__name__ == "ClientResponseError":  # aiohttp
    return status, ""
  return None, ""


def classify(e: BaseException) -> tuple[str, str]:
  """(what kind of transient failure `e` is, its name), or ('', '') for the others."""
  for x in _chain(e):
    status, code = _answer(x)
    name = f"HTTP {status} {code}" if code and code != str(status) else f"HTTP {status}"
    if status in (429, 503) or code in _THROTTLE_CODES:
      return THROTTLED, name
    if code in _CREDENTIAL_CODES or status == 401:
      return CREDENTIALS, name
    if code == "PreconditionFailed" or status == 412:
      return CHANGED, name
    if status in (500, 502, 504) or code == "InternalError":
      return CUT, name
    names = {t.__name__ for t in type(x).__mro__}
    if names & _NO_CONNECTION:
      return "", ""
    if names & _CUT_NAMES:
      return CUT, type(x).__name__
  return "", ""


def backoff(k: int, schedule: tuple[float, float]) -> float:
  """The k-th (1-based) backoff: doubling from schedule[0] up to schedule[1], jittered
  to a uniform draw in [d/2, d]."""
  first, cap = schedule
  d = min(cap, first * 2 ** (k - 1))
  return random.uniform(d / 2, d)


def throttled_error(path: str, doing: str, name: str, attempts: int, e: BaseException):
  """The error for a service that throttled every attempt (`name`: how it said so)."""
  protocol = scheme(path)
  return ThrottledError(
    f"Cannot {doing} {path}: the {protocol}:// service throttled all {attempts} attempts ({name}).",
    received=f"{path} at {remote_fs.where(protocol)} ({detail(e)})",
    fix="The service asks for fewer requests: od_guard backed off between attempts "
    f"(jittered, {THROTTLE_BACKOFF[0]:g} s doubling up to {THROTTLE_BACKOFF[1]:g} s). Run "
    "od-guard again later, or run fewer jobs against this bucket at once.",
  )


def expired_error(path: str, doing: str, name: str, e: BaseException, where: str = ""):
  """The error for credentials rejected after the service accepted them in this run."""
  protocol = scheme(path)
  return CredentialsExpiredError(
    f"Cannot {doing} {path}: the {protocol}:// service rejected the credentials ({name}) "
    "after accepting them earlier in this run: they expired or were revoked.",
    received=f"{path}{where} at {remote_fs.where(protocol)} ({detail(e)})",
    fix="Renew the credentials and run od-guard again; temporary credentials (an assumed "
    "role, SSO, AWS_SESSION_TOKEN) must outlast the run. " + credentials_fix(protocol),
  )


def changed_error(path: str, e: BaseException):
  """The error for an object replaced while it was read (its ETag no longer matches)."""
  return RemoteStorageError(
    f"Cannot read {path}: the object changed while od_guard read it.",
    received=f"{path} at {remote_fs.where(scheme(path))} ({detail(e)})",
    fix="Run od-guard again once the checkpoint is no longer being written.",
  )


def attempts(path: str, doing: str, once):
  """Calls `once()` (one request) until it is answered: throttling backed off
  (THROTTLE_ATTEMPTS attempts), a cut connection retried (RESUMES times).

  Raises:
    ThrottledError, InterruptedReadError, CredentialsExpiredError,
    StorageTimeoutError; or the client's own exception, for the caller to type.
  """
  protocol = scheme(path)
  throttled = cuts = 0
  while True:
    try:
      result = once()
    except errors.OdGuardError:
      raise
    except Exception as e:  # classified; what is not transient goes to the caller
      kind, name = classify(e)
      if kind == THROTTLED:
        throttled += 1
        if throttled >= THROTTLE_ATTEMPTS:
          raise throttled_error(path, doing, name, throttled, e) from e
        time.sleep(backoff(throttled, THROTTLE_BACKOFF))
        continue
      if kind == CUT:
        cuts += 1
        if cuts > RESUMES:
          raise InterruptedReadError(
            f"Cannot {doing} {path}: the connection was cut {cuts} times ({name}).",
            received=f"{path} at {remote_fs.where(protocol)} ({detail(e)})",
            fix=CUT_FIX,
          ) from e
        if cuts > 1:  # the first cut is retried at once: most are one-offs
          time.sleep(backoff(cuts - 1, CUT_BACKOFF))
        continue
      if kind == CREDENTIALS and protocol in accepted:
        raise expired_error(path, doing, name, e) from e
      raise
    accepted.add(protocol)
    return result
