"""The API client: one session, an authentication method, and an entry point per resource."""

from __future__ import annotations

from typing import Any, BinaryIO

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from twinbill_client.bemserver import BemServer
from twinbill_client.exceptions import TwinbillAPIAuthenticationError, TwinbillAPIConnectionError
from twinbill_client.resources import (
    RESOURCE_CLASSES,
    AuditResources,
    HistoryResources,
    InstanceResources,
    IOResources,
    Resources,
    RunResources,
    TaskResources,
)
from twinbill_client.response import TwinbillAPIResponse, process


class BearerTokenAuth(AuthBase):
    """Bearer access token; the client refreshes it with the refresh token when it expires."""

    def __init__(self, access_token: str, refresh_token: str) -> None:
        self.access_token = access_token
        self.refresh_token = refresh_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token}"
        return request


class ApiKeyAuth(AuthBase):
    """Seed 000's `Authorization: token <user_id>:<key>`."""

    def __init__(self, user_id: int, key: str) -> None:
        self.value = f"token {user_id}:{key}"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.value
        return request


class AuthResources:
    """`auth.get_tokens` and `auth.refresh_tokens`, as BEMServer's client names them."""

    def __init__(self, client: TwinbillAPIClient) -> None:
        self._client = client

    def get_tokens(self, email: str, password: str) -> TwinbillAPIResponse:
        """`data` is {"status": "success", "access_token", "refresh_token"} or {"status": "failure"}."""
        return self._client.request("POST", "/api/v1/auth/token", json={"email": email, "password": password},
                                    authenticate=False)

    def refresh_tokens(self, refresh_token: str) -> TwinbillAPIResponse:
        return self._client.request("POST", "/api/v1/auth/token/refresh", authenticate=False,
                                    headers={"Authorization": f"Bearer {refresh_token}"})


class TwinbillAPIClient:
    """Client of the twinbill API gateway (or of one service directly).

    >>> client = TwinbillAPIClient("localhost:8000", use_ssl=False,
    ...     authentication_method=TwinbillAPIClient.make_http_basic("me@example.org", "secret"))
    >>> client.sites.getall(page_size=50).data
    """

    def __init__(self, host: str, *, use_ssl: bool = True, authentication_method: AuthBase | None = None,
                 timeout: float = 30.0) -> None:
        self.base_uri = host if "://" in host else f"{'https' if use_ssl else 'http'}://{host}"
        self.base_uri = self.base_uri.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self._auth_method = authentication_method
        self.auth = AuthResources(self)
        self.io = IOResources(self)
        self.tasks = TaskResources(self)
        self.history = HistoryResources(self)
        self.instances = InstanceResources(self)
        self.runs = RunResources(self)
        self.audit = AuditResources(self)
        self.bem = BemServer(self)
        for name, cls in RESOURCE_CLASSES.items():
            setattr(self, name, cls(self))

    # Entry points declared for type checkers; built in __init__ from RESOURCE_CLASSES.
    users: Resources
    projects: Resources
    products: Resources
    devices: Resources
    sites: Resources
    buildings: Resources
    storeys: Resources
    spaces: Resources
    zones: Resources
    residents: Resources
    tariffs: Resources

    @staticmethod
    def make_http_basic(email: str, password: str) -> AuthBase:
        return HTTPBasicAuth(email, password)

    @staticmethod
    def make_bearer_token_auth(access_token: str, refresh_token: str) -> BearerTokenAuth:
        return BearerTokenAuth(access_token, refresh_token)

    @staticmethod
    def make_api_key_auth(user_id: int, key: str) -> ApiKeyAuth:
        return ApiKeyAuth(user_id, key)

    def set_authentication_method(self, method: AuthBase | None) -> None:
        self._auth_method = method

    def _send(self, method: str, path: str, *, authenticate: bool, stream: bool = False,
              **kwargs: Any) -> requests.Response:
        """One request; with bearer auth, an expired access token is refreshed once and retried
        (a streamed upload body cannot be sent twice: refresh before long uploads)."""
        auth = self._auth_method if authenticate else None
        try:
            response = self.session.request(method, self.base_uri + path, auth=auth, timeout=self.timeout,
                                            stream=stream, **kwargs)
            if response.status_code == 401 and isinstance(auth, BearerTokenAuth) and auth.refresh_token:
                refreshed = self.auth.refresh_tokens(auth.refresh_token).data
                if not isinstance(refreshed, dict) or refreshed.get("status") != "success":
                    raise TwinbillAPIAuthenticationError("access token expired and could not be refreshed",
                                                         status=401)
                auth.access_token, auth.refresh_token = refreshed["access_token"], refreshed["refresh_token"]
                response = self.session.request(method, self.base_uri + path, auth=auth, timeout=self.timeout,
                                                stream=stream, **kwargs)
        except requests.RequestException as err:
            raise TwinbillAPIConnectionError(f"{method} {self.base_uri + path}: {type(err).__name__}: {err}") from err
        return response

    def request(self, method: str, path: str, *, authenticate: bool = True, **kwargs: Any) -> TwinbillAPIResponse:
        """Send one request and unwrap its answer (or raise the typed error)."""
        return process(self._send(method, path, authenticate=authenticate, **kwargs))

    def stream(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request and return the open response to read in chunks (errors raised first)."""
        response = self._send(method, path, authenticate=True, stream=True, **kwargs)
        if response.status_code >= 400:
            process(response)  # raises the typed error, with the server's message
        return response

    def download(self, path: str, *, out: BinaryIO, params: dict[str, Any], chunk: int = 65536) -> TwinbillAPIResponse:
        """GET a file (an export) and stream it into `out`; errors raise as for `request`."""
        with self.stream("GET", path, params=params) as response:
            written = 0
            for block in response.iter_content(chunk_size=chunk):
                out.write(block)
                written += len(block)
            disposition = response.headers.get("Content-Disposition", "")
            filename = disposition.split("filename=", 1)[1].strip('"') if "filename=" in disposition else None
            return TwinbillAPIResponse(status=response.status_code, data={"bytes": written, "filename": filename},
                                       pagination={}, etag=None)
