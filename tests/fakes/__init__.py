"""Stateful fake forges (GitLab REST v4, GitHub REST v3) served over real HTTP on 127.0.0.1."""
