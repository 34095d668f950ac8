"""From tracks to events: one event per confirmed object per zone.

An event starts when a track of a label the zone watches has its box's bottom centre
inside the zone (and outside the zone's object masks) while the median of its recent
scores reaches the label's ``threshold``; it sends an *update* every ``update_every_s``
and *ends* when the tracker loses the object, however long it stood still, so a
person's ghost in the background model neither holds the event open nor hides the
next person. Times are seconds on the pipeline's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge_component.config import DecisionSettings, Zone
from edge_component.objects.tracking import Track, TrackUpdate
from edge_component.objects.zones import ZoneGeometry

from .decision import END_OBJECT_LOST, END_STOPPED, Event, Transition


@dataclass(slots=True)
class ObjectTransition:
    """A transition of one object's event in zone ``zone_index``: the event's messages
    carry ``track``'s label, box and scores as of ``transition.time_s``."""

    zone_index: int
    transition: Transition
    track: Track
    threshold: float


class ObjectEvents:
    """Events of a camera's object zones.

    ``zones``: the camera's zones (motion-only ones get no object events);
    ``event_id_for(zone_index, track_id, started_s)`` names a new event; ``armed(time_s)``
    says whether a new event may start (disarmed: none starts; open ones end with their
    track).
    """

    def __init__(
        self,
        zones: Sequence[Zone],
        settings: DecisionSettings,
        event_id_for: Callable[[int, int, float], str],
    ):
        self.zones = list(zones)
        self.settings = settings
        self.event_id_for = event_id_for
        self._geometry: tuple[tuple[int, int], ZoneGeometry, list[ZoneGeometry]] | None = None
        self._open: dict[tuple[int, int], Event] = {}  # (zone index, track id) -> event

    def _shapes(self, frame_shape: tuple[int, int]) -> tuple[ZoneGeometry, list[ZoneGeometry]]:
        if self._geometry is None or self._geometry[0] != frame_shape:
            zones = ZoneGeometry([z.polygon for z in self.zones], frame_shape)
            masks = [ZoneGeometry([m.polygon for m in z.masks], frame_shape) for z in self.zones]
            self._geometry = (frame_shape, zones, masks)
        return self._geometry[1], self._geometry[2]

    def counts(self, zone_index: int, track: Track, frame_shape: tuple[int, int]) -> bool:
        """True if ``track`` counts in the zone now: watched label, bottom centre inside
        the zone and outside its object masks, median score at the label's threshold."""
        zone = self.zones[zone_index]
        if zone.motion_only or track.label not in zone.objects:
            return False
        geometry, masks = self._shapes(frame_shape)
        if zone_index not in geometry.containing(track.box) or masks[zone_index].containing(track.box):
            return False
        return track.score >= zone.filter_for(track.label).threshold

    def update(self, tracks: TrackUpdate, time_s: float, frame_shape: tuple[int, int], armed: bool = True):
        """Transitions for one analysed frame's :class:`TrackUpdate`, ends first."""
        out: list[ObjectTransition] = []
        for track in tracks.ended:
            out += self._end(track, time_s)
        for track in tracks.active:
            for z in range(len(self.zones)):
                ev = self._open.get((z, track.id))
                threshold = self.zones[z].filter_for(track.label).threshold
                if ev is not None:
                    ev.peak_score = max(ev.peak_score, track.score)
                    if time_s - ev.last_update_s >= self.settings.update_every_s:
                        ev.sequence += 1
                        ev.last_update_s = time_s
                        out.append(ObjectTransition(z, Transition("update", ev, time_s, track.score), track, threshold))
                elif armed and self.counts(z, track, frame_shape):
                    started = track.first_seen_s
                    ev = Event(self.event_id_for(z, track.id, started), started, track.score, 0, time_s, time_s)
                    self._open[(z, track.id)] = ev
                    out.append(ObjectTransition(z, Transition("start", ev, time_s, track.score), track, threshold))
        return out

    def _end(
        self, track: Track, time_s: float, reason: str = END_OBJECT_LOST, ended_s: float | None = None
    ) -> list[ObjectTransition]:
        out = []
        for z in range(len(self.zones)):
            ev = self._open.pop((z, track.id), None)
            if ev is not None:
                ev.sequence += 1
                ev.ended_s = time_s if ended_s is None else max(min(ended_s, time_s), ev.started_s)
                threshold = self.zones[z].filter_for(track.label).threshold
                tr = Transition("end", ev, time_s, ev.peak_score, reason)
                out.append(ObjectTransition(z, tr, track, threshold))
        return out

    def close(
        self, tracks: Sequence[Track], time_s: float, reason: str = END_STOPPED, ended_s: float | None = None
    ) -> list[ObjectTransition]:
        """End the events of ``tracks`` (every track: the source ended or stopped, or a
        live source was lost) for ``reason`` (an END_* word of events.decision);
        ``ended_s`` (default ``time_s``) is when they were last seen."""
        out = []
        for track in tracks:
            out += self._end(track, time_s, reason, ended_s)
        return out

    @property
    def open_events(self) -> int:
        return len(self._open)
