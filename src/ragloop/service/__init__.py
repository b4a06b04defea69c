"""Service: the CLI now; the HTTP app, routes, auth and metrics come with the query service."""
