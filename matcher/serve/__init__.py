"""The triage desk: `matcher serve`, Korean pages and a JSON API over one warm `Matcher`.

Modules, each with one job: `batcher` (one matching thread that gathers concurrent requests into one
encoder call), `jobs` (backlog files run in the background with `matcher.batch`), `desk` (what the
server loads once), `security` (token and body-size checks), `discovery` (the local file through which
`matcher match` finds a running desk), `views` (a `MatchResult` shaped for the page), `api` and `pages`
(the routes) and `app` (assembles them).
"""
