"""``autoreduce login``: store the API URL and a token, or an OAuth2 client, for the user.

The credentials are checked against the API first (``--no-check`` skips that) and written to
the user's config file with mode 0600; a secret is prompted for without echo when not given.
"""

from __future__ import annotations

import click

from autoreduce.api_client import ApiClient
from autoreduce.cli.client import EXIT_CODES_HELP, ClientCommand, client_options, emit
from autoreduce.client_config import ClientCredentials, check_api_url, load_credentials, save_login


@click.command("login", cls=ClientCommand, epilog=EXIT_CODES_HELP)
@client_options
@click.option("--token", help="An API token (`autoreduce token create`); prompted if no client.")
@click.option("--client-id", help="An OAuth2 client id, instead of a token.")
@click.option("--client-secret", help="The client's secret; prompted (not echoed) if not given.")
@click.option("--check/--no-check", default=True, show_default=True, help="Try them on the API.")
def login(token: str | None, client_id: str | None, client_secret: str | None, check: bool) -> None:
    """Sign in: keep the API URL and credentials in ~/.config/autoreduce/client.toml
    (`autoreduce login --api-url https://autoreduce.example.org`, then paste the token)."""
    option_url = click.get_current_context().meta.get("autoreduce.client.api_url")
    api_url = (
        check_api_url(option_url, "the --api-url option")
        if option_url
        else load_credentials().api_url
    )
    if token and client_id:
        raise click.UsageError("give either --token or --client-id, not both")
    if client_id:
        secret = client_secret or click.prompt("Client secret", hide_input=True, err=True)
        credentials = ClientCredentials(
            api_url, client_id=client_id, client_secret=secret, source="the login options"
        )
    else:
        if client_secret:
            raise click.UsageError("--client-secret needs --client-id")
        secret = token or click.prompt("API token", hide_input=True, err=True)
        credentials = ClientCredentials(api_url, token=secret, source="the login options")
    if check:
        client = ApiClient(credentials)
        try:
            client.get("/api/v1/instruments")
        finally:
            client.close()
    path = save_login(
        api_url,
        token=credentials.token,
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
    )
    kind = "an OAuth2 client" if credentials.client_id else "a token"
    emit(
        {"api_url": api_url, "credentials": kind, "config": str(path), "checked": check},
        lambda out, _: out.print(f"signed in to {api_url} with {kind}; saved in {path}"),
    )
