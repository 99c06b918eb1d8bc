"""Procedural dense-prediction scenes: primitives on a ground plane, ray-cast in numpy.

Nothing can be downloaded, so the default multi-task dataset is rendered. A pinhole
camera (OpenCV frame: x right, y down, z forward) at a random height and downward
pitch looks at spheres, boxes, cylinders and cones resting on a ground plane in front
of a far wall, with flat clutter (mats, papers) lying on the ground. Every pixel is a
ray hit on an analytic surface, so depth and normals are exact and segmentation and
saliency are exact masks: the four AdaMTL tasks get labels without annotation noise.

Saliency is planted in appearance: 1-3 *target* objects per scene are painted in
saturated, bright colours; every other object (*distractor*) and the clutter in muted
colours like the background's. Each scene draws a complexity c in [0, 1]: simple
scenes hold 1-3 large objects on plain surfaces, complex ones up to 14 smaller,
mutually occluding objects on busy textures with more clutter and sensor noise, so an
input-adaptive model meets easy and hard inputs.

The image is rendered with 2x2 supersampling (anti-aliased edges) and Lambertian
shading (one directional light plus ambient); the labels are taken at the pixel
centres, where depth and normals are exactly those of the surface the centre ray
hits. Geometry is in metres and independent of the image size. Everything is
deterministic by seed.
"""

import colorsys
import math
from dataclasses import dataclass

import numpy as np

from adaptive_perception.interfaces import MULTITASK_TASKS

CLASS_NAMES = ('background', 'ground', 'sphere', 'box', 'cylinder', 'cone', 'clutter')
BACKGROUND, GROUND, SPHERE, BOX, CYLINDER, CONE, CLUTTER = range(len(CLASS_NAMES))
TASKS = MULTITASK_TASKS  # the tasks the generator labels are the ones the contract names
OBJECT_CLASSES = (SPHERE, BOX, CYLINDER, CONE)
MIN_SIZE = 16
NOISE_TABLE = 64          # value-noise lattice (wraps around)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera ``height`` m above the ground, pitched down by ``pitch`` rad, no roll.

    The world ("level") frame has its origin at the camera, x right, y down along
    gravity and z forward along the horizon; the ground is the plane y = height.
    """

    height: float
    pitch: float
    fov: float            # horizontal = vertical field of view of the square image, rad

    def focal(self, size: int) -> float:
        """Return the focal length in pixels of a ``size`` x ``size`` image (centred)."""
        return size / 2 / math.tan(self.fov / 2)

    def coords(self, size: int) -> np.ndarray:
        """Return the normalised image coordinates (x/z or y/z) of a row's pixel centres."""
        return (np.arange(size) + 0.5 - size / 2) / self.focal(size)

    def rays(self, size: int) -> np.ndarray:
        """Return camera-frame rays through the pixel centres, (size, size, 3) with z = 1.

        With z = 1 the ray parameter of a hit is its z-depth; the rays of a 2 * size
        image are the 2x2 supersamples of the size image.
        """
        c = self.coords(size)
        rays = np.ones((size, size, 3))
        rays[..., 0] = c[None, :]
        rays[..., 1] = c[:, None]
        return rays

    def rotation(self) -> np.ndarray:
        """Return R, world = R @ camera: the optical axis tilted ``pitch`` below the horizon."""
        c, s = math.cos(self.pitch), math.sin(self.pitch)
        return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


@dataclass(frozen=True)
class Surface:
    """A checkered, noise-modulated albedo: colours ``a``, ``b`` alternate every ``period`` m."""

    a: tuple
    b: tuple
    period: float
    noise: float          # relative amplitude of the value-noise modulation
    noise_scale: float    # metres per noise lattice cell


@dataclass(frozen=True)
class Primitive:
    """One object resting on the ground at (x, z); ``radius`` and ``height`` by kind.

    Box: half extents (radius, height / 2, depth), turned by ``yaw`` about the vertical.
    """

    kind: int             # SPHERE, BOX, CYLINDER or CONE
    x: float
    z: float
    radius: float
    height: float
    depth: float
    yaw: float
    surface: Surface
    target: bool


@dataclass(frozen=True)
class Decal:
    """Flat clutter on the ground: a rectangle (half sizes a, b) or an ellipse, turned by yaw."""

    x: float
    z: float
    a: float
    b: float
    yaw: float
    ellipse: bool
    surface: Surface


@dataclass(frozen=True)
class Scene:
    """Everything one scene draws from its seed; rendering it at any size gives that scene."""

    seed: int
    complexity: float
    camera: Camera
    light: tuple          # unit vector towards the light, world frame
    ambient: float
    wall_distance: float  # the far wall is the plane z = wall_distance
    ground: Surface
    wall: Surface
    objects: tuple        # Primitive
    clutter: tuple        # Decal
    noise_std: float      # sensor noise, 8-bit levels


@dataclass(frozen=True)
class DenseSample:
    """One rendered scene: the image, its label maps by task and the number of objects."""

    image: np.ndarray     # uint8 (H, W, 3)
    labels: dict          # task -> label map (see render)
    objects: int          # 3D objects placed (clutter decals not counted)


def _hsv(rng, s_range, v_range, hue=None) -> tuple:
    hue = rng.random() if hue is None else hue % 1.0
    return colorsys.hsv_to_rgb(hue, rng.uniform(*s_range), rng.uniform(*v_range))


def _muted_surface(rng, c: float, period, v_range=(0.3, 0.7), hue=None) -> Surface:
    """Draw a desaturated surface; its checker contrast and noise grow with complexity ``c``."""
    hue = rng.random() if hue is None else hue
    a = _hsv(rng, (0.05, 0.3), v_range, hue)
    contrast = rng.uniform(0.02, 0.06) + c * rng.uniform(0.05, 0.3)
    b = tuple(max(0.0, v - contrast) for v in a)
    return Surface(a, b, period, rng.uniform(0.03, 0.08) + c * rng.uniform(0.1, 0.35),
                   rng.uniform(0.05, 0.4) + (1 - c) * 0.6)


def sample_scene(seed: int) -> Scene:
    """Draw scene ``seed`` (>= 0): camera, light, surfaces, objects and clutter."""
    rng = np.random.default_rng(seed)
    c = float(rng.random())
    camera = Camera(height=rng.uniform(1.2, 2.0), pitch=math.radians(rng.uniform(4, 22)),
                    fov=math.radians(rng.uniform(55, 70)))
    elevation, azimuth = math.radians(rng.uniform(25, 75)), rng.uniform(0, 2 * math.pi)
    light = (math.cos(elevation) * math.sin(azimuth), -math.sin(elevation),
             math.cos(elevation) * math.cos(azimuth))
    wall_distance = rng.uniform(13, 20)
    ground_hue = rng.random()
    ground = _muted_surface(rng, c, rng.uniform(2, 4) * (1 - c) + rng.uniform(0.25, 0.8) * c,
                            (0.35, 0.65), ground_hue)
    wall = _muted_surface(rng, c, rng.uniform(1, 4) * (1 - c) + rng.uniform(0.3, 1) * c,
                          (0.55, 0.85))

    count = int(rng.integers(1 + int(9 * c), 4 + int(11 * c)))
    targets = set(rng.choice(count, size=int(rng.integers(1, min(3, count) + 1)),
                             replace=False).tolist())
    half_width = math.tan(camera.fov / 2)
    objects, footprints = [], []
    for k in range(count):
        kind = OBJECT_CLASSES[int(rng.integers(len(OBJECT_CLASSES)))]
        base = rng.uniform(0.45, 1.0) * (1 - 0.55 * c)
        radius, height, depth, yaw = base, 2 * base, 0.0, 0.0
        if kind == BOX:
            radius, depth = base * rng.uniform(0.6, 1.1), base * rng.uniform(0.6, 1.1)
            height, yaw = 2 * base * rng.uniform(0.5, 1.3), rng.uniform(0, math.pi / 2)
        elif kind == CYLINDER:
            radius, height = base * rng.uniform(0.5, 0.9), base * rng.uniform(1.2, 3.0)
        elif kind == CONE:
            radius, height = base * rng.uniform(0.6, 1.0), base * rng.uniform(1.5, 3.0)
        reach = math.hypot(radius, depth)
        for _ in range(20):     # keep footprints apart where the scene leaves room
            z = rng.uniform(2.8, 7 + 4 * c)
            x = rng.uniform(-0.85, 0.85) * half_width * z
            if all(math.hypot(x - fx, z - fz) > reach + fr for fx, fz, fr in footprints):
                break
        footprints.append((x, z, reach))
        if k in targets:
            colour = _hsv(rng, (0.75, 1.0), (0.85, 1.0))
            surface = Surface(colour, colour, 1.0, rng.uniform(0.0, 0.05), 0.3)
        else:
            hue = ground_hue + rng.normal(0, 0.08) if rng.random() < 0.5 else None
            surface = _muted_surface(rng, c, rng.uniform(0.1, 0.5), hue=hue)
        objects.append(Primitive(kind, x, z, radius, height, depth, yaw, surface,
                                 k in targets))

    clutter = []
    for _ in range(int(rng.integers(0, 1 + int(9 * c)))):
        z = rng.uniform(2.0, 10.0)
        clutter.append(Decal(rng.uniform(-1, 1) * half_width * z, z, rng.uniform(0.1, 0.45),
                             rng.uniform(0.1, 0.45), rng.uniform(0, math.pi),
                             bool(rng.random() < 0.5),
                             _muted_surface(rng, c, rng.uniform(0.05, 0.2), (0.25, 0.85))))
    return Scene(seed, c, camera, light, rng.uniform(0.3, 0.5), wall_distance, ground, wall,
                 tuple(objects), tuple(clutter), 1.5 + 4 * c)


def _noise(table: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smooth value noise in [0, 1] at lattice coordinates (u, v), bilinear with smoothstep."""
    fu, fv = np.floor(u), np.floor(v)
    wu, wv = u - fu, v - fv
    wu, wv = wu * wu * (3 - 2 * wu), wv * wv * (3 - 2 * wv)
    n = table.shape[0]
    iu, iv = fu.astype(np.int64) % n, fv.astype(np.int64) % n
    ju, jv = (iu + 1) % n, (iv + 1) % n
    top = table[iv, iu] * (1 - wu) + table[iv, ju] * wu
    bottom = table[jv, iu] * (1 - wu) + table[jv, ju] * wu
    return top * (1 - wv) + bottom * wv


def _albedo(surface: Surface, u: np.ndarray, v: np.ndarray, table: np.ndarray) -> np.ndarray:
    """RGB albedo (n, 3) of ``surface`` at its 2D texture coordinates (u, v) in metres."""
    checker = (np.floor(u / surface.period) + np.floor(v / surface.period)) % 2 == 1
    colour = np.where(checker[:, None], np.asarray(surface.b), np.asarray(surface.a))
    wobble = _noise(table, u / surface.noise_scale, v / surface.noise_scale)
    return colour * (1 + surface.noise * (2 * wobble[:, None] - 1))


def _yaw_matrix(yaw: float) -> np.ndarray:
    """Rotation about the vertical (y) axis: world = Y @ local."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _intersect(obj: Primitive, ground_y: float, d: np.ndarray) -> tuple:
    """First hit of rays ``d`` (from the origin, world frame) with ``obj``: (t, outward normal).

    ``t`` is inf where a ray misses. Rays start outside every object (objects stand
    at least 2.8 m ahead), so the first hit enters the surface and faces the camera.
    """
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    top = ground_y - obj.height
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        if obj.kind == SPHERE:
            centre = np.array([obj.x, ground_y - obj.radius, obj.z])
            a, dc = (d * d).sum(-1), d @ centre
            disc = dc * dc - a * (centre @ centre - obj.radius ** 2)
            t = (dc - np.sqrt(np.maximum(disc, 0))) / a
            t = np.where((disc >= 0) & (t > 0), t, np.inf)
            normal = t[..., None] * d - centre
        elif obj.kind == BOX:
            turn = _yaw_matrix(obj.yaw)
            half = np.array([obj.radius, obj.height / 2, obj.depth])
            origin = -turn.T @ np.array([obj.x, ground_y - obj.height / 2, obj.z])
            local = d @ turn
            local = np.where(np.abs(local) < 1e-12, 1e-12, local)
            t1, t2 = (-half - origin) / local, (half - origin) / local
            near, far = np.minimum(t1, t2), np.maximum(t1, t2)
            t, t_exit, axis = near.max(-1), far.min(-1), near.argmax(-1)
            t = np.where((t <= t_exit) & (t > 0), t, np.inf)
            face = (np.arange(3) == axis[..., None]) * -np.sign(local)
            normal = face @ turn.T
        elif obj.kind == CYLINDER:
            a = dx * dx + dz * dz
            b = dx * obj.x + dz * obj.z
            disc = b * b - a * (obj.x ** 2 + obj.z ** 2 - obj.radius ** 2)
            side = (b - np.sqrt(np.maximum(disc, 0))) / a
            y = side * dy
            side = np.where((disc >= 0) & (side > 0) & (y >= top) & (y <= ground_y),
                            side, np.inf)
            cap = top / dy
            on_cap = (cap > 0) & ((cap * dx - obj.x) ** 2 + (cap * dz - obj.z) ** 2
                                      <= obj.radius ** 2)
            cap = np.where(on_cap, cap, np.inf)
            t = np.minimum(side, cap)
            normal = t[..., None] * d - np.array([obj.x, 0.0, obj.z])
            normal[..., 1] = 0
            normal[cap < side] = (0.0, -1.0, 0.0)
        else:   # CONE: (x - cx)^2 + (z - cz)^2 = k^2 (y - apex)^2 between apex and ground
            k2 = (obj.radius / obj.height) ** 2
            a = dx * dx + dz * dz - k2 * dy * dy
            b = -2 * (dx * obj.x + dz * obj.z) + 2 * k2 * dy * top
            c = obj.x ** 2 + obj.z ** 2 - k2 * top * top
            disc = b * b - 4 * a * c
            q = -0.5 * (b + np.copysign(np.sqrt(np.maximum(disc, 0)), b))
            t = np.full(dx.shape, np.inf)
            for root in (q / a, c / q):     # the numerically stable pair of roots
                y = root * dy
                valid = (disc >= 0) & (root > 0) & (y >= top) & (y <= ground_y)
                t = np.where(valid & (root < t), root, t)
            hit = t[..., None] * d
            normal = np.stack([hit[..., 0] - obj.x, -k2 * (hit[..., 1] - top),
                               hit[..., 2] - obj.z], -1)
    return t, normal


def _screen_window(obj: Primitive, camera: Camera, ground_y: float, coords: np.ndarray) -> tuple:
    """Row and column slices of the pixels whose rays can hit ``obj`` (its projected bounds)."""
    reach = math.hypot(obj.radius, obj.depth)
    corners = np.array([[obj.x + sx * reach, y, obj.z + sz * reach]
                        for sx in (-1, 1) for sz in (-1, 1)
                        for y in (ground_y - obj.height, ground_y)])
    in_camera = corners @ camera.rotation()
    if (in_camera[:, 2] <= 1e-6).any():
        return slice(None), slice(None)
    u, v = in_camera[:, 0] / in_camera[:, 2], in_camera[:, 1] / in_camera[:, 2]
    n = len(coords)
    cols = slice(max(0, int(np.searchsorted(coords, u.min())) - 1),
                 min(n, int(np.searchsorted(coords, u.max())) + 1))
    rows = slice(max(0, int(np.searchsorted(coords, v.min())) - 1),
                 min(n, int(np.searchsorted(coords, v.max())) + 1))
    return rows, cols


def _cast(scene: Scene, size: int) -> tuple:
    """Ray-cast a size x size grid: (surface index, z-depth, world normal, world hit point).

    Surface index: 0 wall, 1 ground, 2 .. 1 + len(clutter) the decals, then the objects.
    """
    camera, h = scene.camera, scene.camera.height
    coords = camera.coords(size)
    d = camera.rays(size) @ camera.rotation().T
    depth = scene.wall_distance / d[..., 2]
    normal = np.zeros(d.shape)
    normal[..., 2] = -1.0
    index = np.zeros((size, size), np.int16)
    with np.errstate(divide='ignore'):
        ground_t = h / d[..., 1]
    ground = (d[..., 1] > 0) & (ground_t < depth)
    depth = np.where(ground, ground_t, depth)
    normal[ground] = (0.0, -1.0, 0.0)
    index[ground] = 1
    point = depth[..., None] * d
    for j, decal in enumerate(scene.clutter):
        turn = _yaw_matrix(decal.yaw)[np.ix_([0, 2], [0, 2])]
        local = (point[..., [0, 2]] - (decal.x, decal.z)) @ turn
        a, b = local[..., 0] / decal.a, local[..., 1] / decal.b
        inside = a * a + b * b <= 1 if decal.ellipse else (np.abs(a) <= 1) & (np.abs(b) <= 1)
        index[ground & inside] = 2 + j
    first_object = 2 + len(scene.clutter)
    for k, obj in enumerate(scene.objects):
        rows, cols = _screen_window(obj, camera, h, coords)
        t, n = _intersect(obj, h, d[rows, cols])
        closer = t < depth[rows, cols]
        depth[rows, cols][closer] = t[closer]
        normal[rows, cols][closer] = n[closer]
        index[rows, cols][closer] = first_object + k
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    return index, depth, normal, depth[..., None] * d


def _shade(scene: Scene, index, normal, point, table) -> np.ndarray:
    """Linear RGB (H, W, 3) in [0, 1]: albedo times ambient plus Lambertian light."""
    albedo = np.zeros(point.shape)
    x, y, z = point[..., 0], point[..., 1], point[..., 2]
    surfaces = [(scene.wall, x, y), (scene.ground, x, z)]
    surfaces += [(decal.surface, x, z) for decal in scene.clutter]
    surfaces += [(obj.surface, x + z, y) for obj in scene.objects]
    for i, (surface, u, v) in enumerate(surfaces):
        mask = index == i
        if mask.any():
            albedo[mask] = _albedo(surface, u[mask], v[mask], table)
    lambert = np.clip(normal @ np.asarray(scene.light), 0, 1)
    return np.clip(albedo * (scene.ambient + (1 - scene.ambient) * lambert)[..., None], 0, 1)


def render(scene: Scene, size: int = 64) -> DenseSample:
    """Render ``scene`` as a ``size`` x ``size`` image with its four label maps.

    Labels: ``segmentation`` uint8 class ids (``CLASS_NAMES``); ``depth`` float32
    z-depth in metres along the optical axis (the far wall bounds it, every pixel is
    valid); ``normals`` float32 unit surface normals in the camera frame, facing the
    camera; ``saliency`` uint8 1 on the visible pixels of target objects, else 0.
    """
    if size < MIN_SIZE:
        raise ValueError(f'size must be at least {MIN_SIZE}, got {size}')
    rng = np.random.default_rng([scene.seed, 1])    # independent of the scene's draws
    table = rng.random((NOISE_TABLE, NOISE_TABLE))
    index, _, normal, point = _cast(scene, 2 * size)
    colour = _shade(scene, index, normal, point, table)
    colour = colour.reshape(size, 2, size, 2, 3).mean((1, 3)) * 255
    colour += rng.normal(0, scene.noise_std, colour.shape)
    image = np.clip(np.round(colour), 0, 255).astype(np.uint8)

    index, depth, normal, _ = _cast(scene, size)
    objects = scene.objects
    class_of = np.array([BACKGROUND, GROUND] + [CLUTTER] * len(scene.clutter)
                        + [obj.kind for obj in objects], np.uint8)
    target_of = np.array([0] * (2 + len(scene.clutter)) + [obj.target for obj in objects],
                         np.uint8)
    labels = {
        'segmentation': class_of[index],
        'depth': depth.astype(np.float32),
        'normals': (normal @ scene.camera.rotation()).astype(np.float32),
        'saliency': target_of[index],
    }
    return DenseSample(image, labels, len(objects))


def render_scene(seed: int, size: int = 64) -> DenseSample:
    """Scene ``seed`` (>= 0) as a ``size`` x ``size`` ``DenseSample``; deterministic by seed."""
    return render(sample_scene(seed), size)
