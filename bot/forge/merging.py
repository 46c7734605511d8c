"""Who reviews a release pull request, and how it merges without a person: GitHub only.

* :func:`ask_reviewers`: when a pull request is opened, the change's reviewers are requested
  (``pulls/request-reviewers``), once; a person who later removes a reviewer is not overruled.
* :func:`merge_when_ready`: for a change with ``autoMerge``, asked again on every pass (it is
  level-triggered and looks before it writes):

  - no open pull request for the key's branch, or its head is not the head releasebot proposed:
    nothing is merged (a head releasebot did not push is never merged by it);
  - auto-merge already enabled: nothing to do; GitHub merges once branch protection allows;
  - otherwise GitHub auto-merge is enabled with the GraphQL ``enablePullRequestAutoMerge``
    mutation, pinned to that head (``expectedHeadOid``): branch protection, required checks and
    reviews still decide, and GitHub merges;
  - where GitHub will not enable it (the repository lacks "Allow auto-merge", or the pull request
    is already mergeable and GitHub has nothing to wait for), the pull request is merged with
    REST, pinned to the head (``sha``), and only when the head's checks are green: every check
    run completed as success, neutral or skipped, no commit status pending or failed, and at
    least one check other than releasebot's own quality evidence has reported (right after
    opening, CI has not even started; "nothing failed yet" is not green). Not green yet: it
    says why and waits; the ``check_suite``/``status`` event that follows brings the key back.

The merge method is a merge commit, in both paths. releasebot reads its releases back from
main's history by the trailers of its own commits (:meth:`bot.repo.EnvRepo.history`) and dates a
walk step by the first-parent commit that landed it (:meth:`bot.repo.EnvRepo.landed`): a merge
commit keeps releasebot's commit, trailers and sha (the one validated and checked) reachable, and
is itself the first-parent commit, dated when the pull request landed. A squash would replace the
message with the pull request's title and body, losing the trailers; a rebase would rewrite the
commit, so the sha that was checked would not be the sha on main.

Nothing here decides whether a change may merge by itself (the catalog and the plan do), and
nothing bypasses branch protection: where a person must approve, GitHub refuses the merge, and
that refusal is said, not retried.
"""

from __future__ import annotations

from github import GithubException
from github.GithubObject import NotSet
from github.PullRequest import PullRequest

from bot import prbody
from bot.errors import UpstreamError
from bot.forge.github import QUALITY_CHECK, GitHubForge, detail
from bot.plan import Change

MERGE_METHOD = "merge"  # see the module docstring: trailers and the checked sha must reach main
GREEN = frozenset({"success", "neutral", "skipped"})
# GitHub's GraphQL refusals that mean "auto-merge is not available here", not "this must not
# merge": the repository setting is off, or the pull request is already mergeable (clean, or
# unstable/has_hooks: mergeable with non-required checks failing or hooks to run), or the base
# branch has no protection, so there is nothing for GitHub to wait for.
NOT_AVAILABLE = (
    "auto merge is not allowed",
    "is in clean status",
    "is in unstable status",
    "is in has_hooks status",
    "protected branch rules not configured",
)


def ask_reviewers(forge: GitHubForge, pr: PullRequest, change: Change) -> str:
    try:
        return _ask_reviewers(forge, pr, change)
    except UpstreamError as exc:
        # The pull request is open; failing its proposal now would only hide that.
        return f"; could not ask for reviews: {exc}"


def _ask_reviewers(forge: GitHubForge, pr: PullRequest, change: Change) -> str:
    """Request the change's reviewers on the pull request just opened; what was done, as a suffix
    for the proposal's line ("" when nobody is asked).

    The pull request's author (the App, or the token's owner) is left out: GitHub refuses to ask
    an author for review. A team is named ``org/slug`` in the catalog and by its slug here; a team
    of another organisation cannot review this repository and is left out with a note. When GitHub
    refuses the request (422, typically someone who is not a collaborator: then nobody was asked),
    each reviewer is asked alone, so one wrong name costs only itself, and the pull request says
    who could not be asked and why, where its reviewers and the catalog's owners see it. Nothing
    fails: a missing reviewer must not stop a release from being proposed (:func:`ask_reviewers`
    says any other failure in its line).
    """
    author = (pr.user.login if pr.user else "").lower()
    owner = forge.full_name.split("/")[0].lower()
    users = [u for u in change.reviewers if u.lower() != author]
    teams, refused = [], []
    for team in change.team_reviewers:
        org, _, slug = team.rpartition("/")
        if org.lower() in ("", owner):
            teams.append(slug)
        else:
            refused.append(f"team {team} (not a team of {owner})")
    if not users and not teams and not refused:
        return ""
    asked: list[str] = []
    if users or teams:
        problem = _request(forge, pr, users, teams)
        if problem is None:
            asked = [*users, *(f"team {t}" for t in teams)]
        else:
            alone = [*((u, [u], []) for u in users), *((f"team {t}", [], [t]) for t in teams)]
            for who, one_user, one_team in alone:
                problem = _request(forge, pr, one_user, one_team)
                if problem is None:
                    asked.append(who)
                else:
                    refused.append(f"{who} ({problem})")
    said = f"; asked {', '.join(asked)} for review" if asked else ""
    if refused:
        text = (
            "releasebot could not ask for a review from: "
            + "; ".join(prbody.clean(r) for r in refused)
            + ". Check this environment's `reviewers` in the catalog: people must be collaborators of "
            "this repository, and teams must belong to its organisation."
        )
        forge._call(f"comment on #{pr.number}", lambda: pr.create_issue_comment(text))
        said += f"; could not ask {'; '.join(refused)} (said on the pull request)"
    return said


def _request(forge: GitHubForge, pr: PullRequest, users: list[str], teams: list[str]) -> str | None:
    """Ask ``users`` and ``teams``; None when GitHub took it, else what GitHub said (422)."""

    def ask() -> str | None:
        try:
            pr.create_review_request(reviewers=users or NotSet, team_reviewers=teams or NotSet)
        except GithubException as exc:
            if exc.status != 422:
                raise
            return detail(exc) or "refused"
        return None

    return forge._call(f"request reviews on #{pr.number}", ask)


def merge_when_ready(forge: GitHubForge, change: Change, head: str) -> str | None:
    """Hand the key's open pull request at ``head`` to GitHub auto-merge, or merge it when GitHub
    will not and its checks are green; say what was done or why it waits. None: nothing to do."""
    pr = forge._open_pr(change.key.branch)
    if pr is None:
        return None  # not open (merged, closed, or not proposed yet): nothing to merge
    number = pr.number
    if pr.head.sha != head:
        return (
            f"pull request #{number}: its head {pr.head.sha[:12]} is not {head[:12]}, the head releasebot "
            "proposed; not merging it"
        )
    if pr.auto_merge is not None:
        return None  # enabled before: GitHub merges once branch protection allows
    refused = forge._call(f"enable auto-merge on #{number}", lambda: _enable(pr, head))
    if refused is None:
        return f"enabled auto-merge on pull request #{number} at {head[:12]}: GitHub merges it once its checks pass"
    waiting = _not_green(forge, head)
    if waiting:
        return f"pull request #{number}: GitHub auto-merge is not available ({refused}); merging it once {waiting}"
    problem = forge._call(f"merge #{number}", lambda: _merge(pr, head))
    if problem is not None:
        return f"pull request #{number}: GitHub did not merge it at {head[:12]}: {problem}"
    return f"merged pull request #{number} at {head[:12]}: its checks are green (GitHub auto-merge: {refused})"


def _enable(pr: PullRequest, head: str) -> str | None:
    """Enable auto-merge; None when done, else GitHub's refusal when it means "not available here"."""
    try:
        # PyGithub sends ``mutation Mutation($input: EnablePullRequestAutoMergeInput!) {
        # enablePullRequestAutoMerge(input: $input) { actor {...} clientMutationId } }`` to POST
        # /graphql; a GraphQL error comes back as a GithubException with status 400.
        pr.enable_automerge(merge_method=MERGE_METHOD.upper(), expected_head_oid=head)
    except GithubException as exc:
        said = detail(exc)
        if exc.status == 400 and any(reason in said.lower() for reason in NOT_AVAILABLE):
            return said
        raise
    return None


def _not_green(forge: GitHubForge, head: str) -> str | None:
    """What the checks on ``head`` still wait for or failed, said for people; None when green."""
    commit = forge._repo.get_commit(head)  # lazy: no request of its own
    runs = forge._call(f"list check runs on {head[:12]}", lambda: list(commit.get_check_runs()))
    pending = sorted(r.name for r in runs if r.status != "completed")
    failed = sorted(f"{r.name} ({r.conclusion})" for r in runs if r.status == "completed" and r.conclusion not in GREEN)
    if failed:
        return f"its failed checks pass again: {', '.join(failed)}"
    if pending:
        return f"its checks finish: {', '.join(pending)} still running"
    combined = forge._call(f"read commit statuses of {head[:12]}", lambda: commit.get_combined_status())
    if combined.total_count and combined.state != "success":
        open_ = sorted(f"{s.context} ({s.state})" for s in combined.statuses if s.state != "success")
        return f"its commit statuses succeed: {', '.join(open_) or combined.state}"
    # The quality check is releasebot's own evidence, posted before this: it says nothing about
    # whether the head's files are valid, so it does not count as "checks have run".
    if not combined.total_count and not [r for r in runs if r.name != QUALITY_CHECK]:
        return "its checks report: none has reported on this head yet"
    return None


def _merge(pr: PullRequest, head: str) -> str | None:
    """Merge at ``head``; None when merged, else GitHub's reason (405: not mergeable, such as a
    review still required; 409: the head moved since it was checked)."""
    try:
        pr.merge(merge_method=MERGE_METHOD, sha=head)
    except GithubException as exc:
        if exc.status not in (405, 409):
            raise
        return detail(exc) or f"GitHub {exc.status}"
    return None
