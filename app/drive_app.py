"""The driving view's main loop: keys in, simulator steps, frames out (window, video, or neither).

:class:`DriveApp` runs a :class:`~ppuu.app.drive_session.DriveSession` drawn by a
:class:`~ppuu.app.drive_view.DriveView`. With a window, it draws ``fps`` frames per second and
advances the simulator ``speed`` x real time (10 steps per simulated second: at speed 1 a step
every third frame at 30 fps); when an episode ends it holds the last frame for a moment and
starts the next one. Headless (no window: servers and tests) it draws one frame per step, as
fast as it can, and stops when the episode ends. Key state is tracked from the KEYDOWN / KEYUP
events themselves, so events posted by a program (tests) drive exactly as a keyboard does.
"""

from __future__ import annotations

import time

import pygame

from ppuu.app.drive_session import MODES, TRAFFIC, DriveSession
from ppuu.app.drive_view import DriveView

ARROWS = {pygame.K_UP: "up", pygame.K_DOWN: "down", pygame.K_LEFT: "left", pygame.K_RIGHT: "right"}
MODE_KEYS = {pygame.K_1: MODES[0], pygame.K_2: MODES[1], pygame.K_3: MODES[2], pygame.K_4: MODES[3]}
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
PAN_KEYS = {pygame.K_j: (-1, 0), pygame.K_l: (1, 0), pygame.K_i: (0, 1), pygame.K_k: (0, -1)}


class DriveApp:
    """The loop (module docstring).

    Args:
        session, view: what runs and how it is drawn.
        headless: no window (one frame per step, no pacing).
        fps: frames per second of the window (and of its recording).
        speed: simulated seconds per real second (window).
        recorder: a :class:`~ppuu.app.drive_record.VideoRecorder`, or None.
        hold_seconds: how long a finished episode stays on screen before the next (window; None = until a key).
    """

    def __init__(self, session: DriveSession, view: DriveView, headless: bool = False, fps: float = 30.0,
                 speed: float = 1.0, recorder=None, hold_seconds: float | None = 2.0):
        self.session, self.view, self.headless = session, view, headless
        self.fps, self.speed, self.recorder, self.hold_seconds = float(fps), float(speed), recorder, hold_seconds
        self.paused, self.running = False, True
        self.message, self._message_until = "", 0.0
        self._due = 0.0                 # simulator steps owed to the clock
        self._held = 0.0                # s the finished episode has been shown
        self.frames = 0                 # frames shown (each tick)
        self.draws = 0                  # frames drawn (a window skips those where nothing changed)
        self._shown: tuple | None = None
        self._deadline = 0.0            # perf_counter time of the last frame's slot
        self.window: pygame.Surface | None = None
        self.clock = pygame.time.Clock()
        self.draw_seconds = self.step_seconds = self.wall_seconds = 0.0

    # ------------------------------------------------------------------ input
    def open_window(self) -> None:
        pygame.display.init()
        self.window = pygame.display.set_mode(self.view.size)
        pygame.display.set_caption("ppuu drive")

    def handle(self, event: pygame.event.Event) -> None:
        """Apply one pygame event (keys, window close)."""
        s = self.session
        if event.type == pygame.QUIT:
            self.running = False
        elif event.type in (pygame.KEYDOWN, pygame.KEYUP) and event.key in ARROWS:
            s.keys[ARROWS[event.key]] = event.type == pygame.KEYDOWN
        elif event.type == pygame.KEYDOWN:
            key = event.key
            try:
                if key in (pygame.K_q, pygame.K_ESCAPE):
                    self.running = False
                elif key in MODE_KEYS:
                    s.set_mode(MODE_KEYS[key])
                    self.say(f"mode: {s.mode}")
                elif key == pygame.K_g:
                    self.view.show_ghost = not self.view.show_ghost
                elif key == pygame.K_SPACE:
                    self.paused = not self.paused
                elif key == pygame.K_PERIOD:
                    self.paused = True
                    self._step()
                elif key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS):
                    self.speed = next((v for v in SPEEDS if v > self.speed), SPEEDS[-1])
                elif key in (pygame.K_MINUS, pygame.K_KP_MINUS):
                    self.speed = next((v for v in reversed(SPEEDS) if v < self.speed), SPEEDS[0])
                elif key == pygame.K_r:
                    s.restart()
                elif key == pygame.K_n:
                    s.next_episode(1)
                elif key == pygame.K_p:
                    s.next_episode(-1)
                elif key == pygame.K_t:
                    s.set_traffic(TRAFFIC[(TRAFFIC.index(s.traffic) + 1) % len(TRAFFIC)])
                    self.say(f"traffic: {s.traffic}")
                elif key == pygame.K_z:
                    self.view.camera.zoom(1.25)
                elif key == pygame.K_x:
                    self.view.camera.zoom(0.8)
                elif key in PAN_KEYS:
                    dx, dy = PAN_KEYS[key]
                    self.view.camera.pan += (dx * 0.25 * self.view.camera.view_length_m, dy * 5.0)
                elif key == pygame.K_c:
                    self.view.camera.pan[:] = 0.0
                elif key == pygame.K_h:
                    self.view.show_help = not self.view.show_help
            except ValueError as exc:          # e.g. policy mode without a policy: say so, keep running
                self.say(str(exc))

    def say(self, text: str, seconds: float = 3.0) -> None:
        """Show ``text`` on the status line for a few seconds."""
        self.message, self._message_until = text, time.monotonic() + seconds

    # ------------------------------------------------------------------ the loop
    def _step(self) -> None:
        start = time.perf_counter()
        self.session.step()
        self.step_seconds += time.perf_counter() - start

    def status(self, fps: bool = True) -> str:
        """The status line (with the frame rate shown, unless ``fps`` is False)."""
        s = self.session
        rate = self.clock.get_fps() if fps and not self.headless else 0.0
        line = (f"{s.mode} | {s.traffic} traffic | x{self.speed:g}{' | PAUSED' if self.paused else ''}"
                f"{f' | {rate:.0f} fps' if rate else ''} | h: help")
        if self.message and time.monotonic() < self._message_until:
            line += f" | {self.message}"
        return line

    def _signature(self) -> tuple:
        """Everything a frame shows, short of the frame rate: a window redraws only when it changes."""
        s, camera = self.session, self.view.camera
        return (s.traffic, s.vehicle_id, s._starts, int(s.sim.steps[0]), s.mode, id(s.futures), id(s.plan),
                self.status(fps=False), camera.ppm, tuple(camera.pan), self.view.show_ghost, self.view.show_help)

    def tick(self) -> None:
        """One frame: events, the steps due, drawing, showing and recording."""
        s = self.session
        events = pygame.event.get() if self.window is not None else []
        for event in events:
            self.handle(event)
        if self.headless:
            if not self.paused:
                self._step()
        elif not self.paused:
            if s.done:
                self._held += 1.0 / self.fps
                if self.hold_seconds is not None and self._held >= self.hold_seconds:
                    s.next_episode(1)
            else:
                self._held = 0.0
                self._due += self.speed / s.sim.dt / self.fps
                while self._due >= 1.0 and not s.done:
                    self._due -= 1.0
                    self._step()
        s.poll_futures()
        start = time.perf_counter()
        signature = self._signature()
        # A window at speed 1 steps every third frame: in between nothing moves, and the frame on screen
        # (and in the recording) stays as it is instead of being drawn and shown again.
        redraw = self.window is None or signature != self._shown
        if redraw:
            self.view.draw(self.status())
            self.draws += 1
            if self.window is not None:
                self.window.blit(self.view.surface, (0, 0))
                pygame.display.flip()
            self._shown = signature
        if self.recorder is not None:
            self.recorder.add(self.view.frame(), repeat=not redraw)
        self.draw_seconds += time.perf_counter() - start
        self.frames += 1
        if not self.headless:
            self._pace()

    def _pace(self) -> None:
        """Sleep until the next frame's time on an absolute schedule (a late wake-up shortens the next wait, so
        the rate averages ``fps`` whenever the work fits; after a long stall the schedule restarts from now)."""
        self.clock.tick()                                  # measures the rate shown on the status line
        now = time.perf_counter()
        self._deadline = max(self._deadline, now - 0.25) + 1.0 / self.fps
        if self._deadline > now:
            time.sleep(self._deadline - now)

    def run(self, max_frames: int | None = None) -> int:
        """Run until quit (window), the episode's end (headless) or ``max_frames``; returns the frames drawn."""
        if not self.headless and self.window is None:
            self.open_window()
        started, frames = time.perf_counter(), self.frames
        self._deadline = started
        try:
            while self.running and (max_frames is None or self.frames < max_frames):
                self.tick()
                if self.headless and self.session.done:
                    break
        finally:
            self.wall_seconds += time.perf_counter() - started
            self.session.close()
            if self.window is not None:
                pygame.display.quit()
                self.window = None
        return self.frames - frames
