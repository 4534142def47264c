"""Detector training step: TensorFlow graph mode vs XLA (``jit_compile=True``) on this CPU.

One det_s (width 1.5, 256x256, batch 16, 4 classes) training step exactly as
``edgecnn.train.detect`` builds it (assignment, losses, Adam), on random images with 5 boxes
each; both variants are timed interleaved, 4 rounds of 8 steps, after 3 warm-up steps.

Example:
    python benchmarks/train_step_xla.py
"""

import os
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from edgecnn.lazy import keras, tensorflow
tf = tensorflow(); k = keras()
from edgecnn.models.registry import get_entry
from edgecnn.runtime import postprocess as pp
from edgecnn.train.assign import AssignConfig, assign
from edgecnn.train.losses import LossWeights, detection_loss
from edgecnn.train import common
B, S = 16, 256
entry = get_entry("det_s", task="detect")
model = entry.builder(input_shape=(S,S,3), num_classes=4, width=1.5)
tm = k.Model(model.inputs, [model.get_layer("boxes").output, model.get_layer("scores_logits").output])
centers, spa = pp.anchor_points((S,S),(8,16,32)); anchors=tf.constant(centers); st=tf.constant(spa)
opt = common.make_optimizer("adam", 1e-3); opt.build(tm.trainable_variables)
rng = np.random.default_rng(0)
imgs = tf.constant(rng.integers(0,255,(B,S,S,3)).astype("float32"))
gtb = np.zeros((B,100,4),"float32"); gtc = -np.ones((B,100),"int32")
for b in range(B):
    for j in range(5):
        x,y = rng.uniform(0,200,2); w,h = rng.uniform(20,60,2); gtb[b,j]=[x,y,x+w,y+h]; gtc[b,j]=rng.integers(0,4)
gtb=tf.constant(gtb); gtc=tf.constant(gtc)
def step(images, gt_boxes, gt_classes):
    with tf.GradientTape() as tape:
        ltrb, logits = tm(images/255.0, training=True)
        d = ltrb*st[None,:,None]
        boxes = tf.concat([anchors[None]-d[...,:2], anchors[None]+d[...,2:]],-1)
        t = assign(tf.sigmoid(logits), boxes, anchors, gt_boxes, gt_classes, 4, AssignConfig(), st, tf.constant(False))
        loss = detection_loss(logits, ltrb, boxes, t, anchors, st, LossWeights())[0]
    g = tape.gradient(loss, tm.trainable_variables)
    g,_ = tf.clip_by_global_norm(g, 10.0)
    opt.apply_gradients(zip(g, tm.trainable_variables))
    return loss
fns = {"graph": tf.function(step, autograph=False), "xla": tf.function(step, autograph=False, jit_compile=True)}
for n,f in fns.items():
    t=time.perf_counter(); f(imgs,gtb,gtc); print(n, "first call", time.perf_counter()-t, flush=True)
    for _ in range(3): f(imgs,gtb,gtc)
res={n:[] for n in fns}
for r in range(4):
    for n,f in fns.items():
        t=time.perf_counter()
        for _ in range(8): float(f(imgs,gtb,gtc))
        res[n].append((time.perf_counter()-t)/8*1e3)
for n,v in res.items(): print(n, "ms/step", [round(x,1) for x in v], "median", round(float(np.median(v)),1))
