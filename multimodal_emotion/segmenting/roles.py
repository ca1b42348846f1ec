"""Who is the agent and who the customer.

The rule, also stated in the README (section "Calls"):

* ``agent_channel="left"|"right"`` (stereo only): that channel's speaker is the agent. Contact
  centres fix the channel per platform, so it is a setting, not a guess.
* ``agent="first"``: the first speaker to talk is the agent (the agent answers the call with a
  greeting in most inbound recordings); ``agent="most"``: the speaker with the most talk time;
  ``agent=<speaker id>`` (``"S2"``, ``"right"``): that speaker.
* Neither given: stereo -> the left channel is the agent; mono -> ``"first"``.

Every other speaker is a customer. A recording with no speech gives an empty mapping.
"""

from __future__ import annotations

from ..errors import InputError
from .find import CHANNEL_NAMES, TurnsResult

AGENT, CUSTOMER = "agent", "customer"


def assign_roles(result: TurnsResult, agent_channel: str | int | None = None,
                 agent: str | None = None) -> dict[str, str]:
    """``{speaker: "agent" | "customer"}`` for every speaker of ``result`` (rules above)."""
    if agent_channel is not None and agent is not None:
        raise InputError("give either agent_channel or agent, not both")
    if agent_channel is not None:
        if result.channels != 2:
            raise InputError("agent_channel needs a stereo recording (one speaker per channel); "
                             "this one was diarized from a mono mix: use agent='first', 'most' "
                             "or a speaker id")
        if agent_channel in (0, 1):
            agent_channel = CHANNEL_NAMES[int(agent_channel)]
        if agent_channel not in CHANNEL_NAMES:
            raise InputError(f"agent_channel must be 'left' or 'right', not {agent_channel!r}")
        who = agent_channel
    else:
        rule = agent if agent is not None else ("left" if result.channels == 2 else "first")
        who = _pick(result, rule)
    return {s: AGENT if s == who else CUSTOMER for s in result.speakers}


def _pick(result: TurnsResult, rule: str) -> str | None:
    if not result.turns:
        return None
    if rule == "first":
        return min(result.turns, key=lambda t: (t.start, t.end)).speaker
    if rule == "most":
        talk = result.talk_time()
        return max(result.speakers, key=lambda s: (talk.get(s, 0.0), -result.speakers.index(s)))
    if rule in result.speakers or (result.channels == 2 and rule in CHANNEL_NAMES):
        return rule
    raise InputError(f"agent must be 'first', 'most' or one of the speakers "
                     f"({', '.join(result.speakers) or 'none'}), not {rule!r}")
