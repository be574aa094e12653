"""The Keras peers of aelab's generative models, run inside their own virtual environment (Keras 3
on TensorFlow-CPU; `benchmarks/peers.py` creates it and calls this script; aelab is not imported).

    python keras_peers.py vae --latent 2 --data data.npz --epochs 10 --seed 0 --out DIR
    python keras_peers.py gan --data data.npz --epochs 10 --seed 0 --out DIR
    python keras_peers.py conv-ae --data data.npz --epochs 3 --seed 0 --out DIR
    python keras_peers.py seed-vae --data data.npz --epochs 3 --seed 0 --out DIR
    python keras_peers.py char-lstm --data text.npz --epochs 2 --seed 0 --out DIR

- ``seed-vae``: seed 3's VAE as aelab's `vae` builds it: 3x3 convs 32, 64 (stride 2), 64, 64 with
  ReLU, dense 32, a 2-D code; decoder dense to 64x14x14, a 3x3 stride-2 transposed conv 32 and a
  3x3 conv to one channel with a sigmoid; the ``vae`` loss (summed BCE plus KL), Adam 1e-3, batch 128.
- ``char-lstm``: seed 3's text model: LSTM 128 over 40-character windows taken every 3rd
  character, a softmax over the alphabet, RMSprop 0.01, batch 128; one-hot inputs made per batch
  (``tf.one_hot`` in a tf.data pipeline, as a Keras user would rather than the seed's full one-hot
  array). result.json: the seconds of each epoch, the windows a epoch, and the test bits per
  character on every test character with 40 before it (as aelab measures it).

- ``conv-ae``: seed 1's convolutional autoencoder, as aelab's `conv-resize` builds it: 3x3 convs
  16, 8, 8 with ReLU, each followed by a 2x2 'same' max-pool (28 -> 14 -> 7 -> 4); the decoder
  resizes (nearest) to 7, 14 and 28, each followed by a 3x3 conv 8, 8, 16 with ReLU, then a 3x3
  conv to one channel giving logits; binary cross-entropy on the logits, Adam 1e-3, batch 200,
  the data's validation images evaluated each epoch. result.json: the seconds of each epoch and
  the test BCE (test_bce).

- ``vae``: keras-io's "Variational AutoEncoder" example (https://keras.io/examples/generative/vae/)
  as its readers run it: conv 32 and 64 with stride 2, dense 16, a ``--latent``-D code, the
  decoder's transposed convs 64 and 32 with stride 2 and a sigmoid output; summed binary
  cross-entropy plus KL, Adam at Keras' defaults, batch 128.
- ``gan``: a DCGAN with seed 3's tricks, sized as aelab's `gan` (generator: dense to 64x7x7,
  4x4 stride-2 transposed convs to 32 and 16 with batch norm and LeakyReLU(0.2), a 5x5 conv with
  tanh; discriminator: 4x4 stride-2 convs 32 and 64, LeakyReLU(0.2), dropout 0.4, dense), label 1
  for generated images, seed 3's label noise (``labels += 0.05 * random``), Adam 2e-4 with beta1
  0.5 and ``clipvalue=1.0``, batch 64; Keras' defaults everywhere else (Glorot-uniform
  initialisation, batch-norm momentum 0.99).

Writes DIR/samples.npy (10,000 samples, float32 in [0, 1], shaped (N, 28, 28)) and DIR/result.json:
the seconds of each epoch, the multiply-accumulates of one image through the networks and, for the VAE, the test ELBO and IWAE bound (k = 100) in nats per
image on the first 2,000 test images, computed as aelab computes them.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

BOUND_IMAGES, BOUND_SAMPLES, N_SAMPLES = 2000, 100, 10_000


class EpochTimes(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._started)


class Sampling(layers.Layer):
    """z = mean + exp(log_var / 2) * eps."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        eps = keras.random.normal(shape=tf.shape(z_mean), seed=self.seed_generator)
        return z_mean + tf.exp(0.5 * z_log_var) * eps


def vae_encoder(inputs, features, latent: int) -> keras.Model:
    """The encoder from its features: the two heads (mean, log-variance) and a sample, as keras-io's."""
    z_mean, z_log_var = layers.Dense(latent, name="z_mean")(features), layers.Dense(latent, name="z_log_var")(features)
    return keras.Model(inputs, [z_mean, z_log_var, Sampling()([z_mean, z_log_var])], name="encoder")


def vae_parts(latent: int) -> tuple[keras.Model, keras.Model]:
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu", strides=2, padding="same")(inputs)
    x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    encoder = vae_encoder(inputs, layers.Dense(16, activation="relu")(layers.Flatten()(x)), latent)
    latent_inputs = keras.Input(shape=(latent,))
    x = layers.Reshape((7, 7, 64))(layers.Dense(7 * 7 * 64, activation="relu")(latent_inputs))
    x = layers.Conv2DTranspose(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
    outputs = layers.Conv2DTranspose(1, 3, activation="sigmoid", padding="same")(x)
    return encoder, keras.Model(latent_inputs, outputs, name="decoder")


class VAE(keras.Model):
    def __init__(self, encoder: keras.Model, decoder: keras.Model, **kwargs) -> None:
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            recon = tf.reduce_mean(tf.reduce_sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2)))
            kl = -0.5 * (1 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var))
            loss = recon + tf.reduce_mean(tf.reduce_sum(kl, axis=1))
        grads = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}


def forward_macs(*models: keras.Model) -> int:
    """Multiply-accumulates of one image through each model once (dense and convolution layers),
    counted as torch's flop counter counts aelab's models: a convolution's output pixels, or a
    transposed convolution's input pixels, times its kernel's size."""
    total = 0
    for model in models:
        for layer in model.layers:
            if isinstance(layer, layers.Conv2DTranspose):
                total += math.prod(layer.input.shape[1:3]) * math.prod(layer.kernel.shape)
            elif isinstance(layer, layers.Conv2D):
                total += math.prod(layer.output.shape[1:3]) * math.prod(layer.kernel.shape)
            elif isinstance(layer, layers.Dense):
                total += math.prod(layer.kernel.shape)
    return total


def vae_bounds(encoder: keras.Model, decoder: keras.Model, images: np.ndarray, seed: int) -> dict[str, float]:
    """ELBO (exact KL) and the IWAE bound with k = 100 draws per image, as aelab's metrics.vae_bounds."""
    rng = np.random.default_rng(seed)
    totals = {"elbo": 0.0, "recon": 0.0, "kl": 0.0, "iwae": 0.0}
    for start in range(0, len(images), 100):
        x = images[start : start + 100]
        mean, log_var, _ = encoder.predict(x, verbose=0)
        std = np.exp(0.5 * log_var)
        eps = rng.standard_normal((BOUND_SAMPLES, *mean.shape)).astype(np.float32)
        z = mean + std * eps  # (k, B, D)
        p = decoder.predict(z.reshape(-1, mean.shape[1]), batch_size=1000, verbose=0).reshape(BOUND_SAMPLES, len(x), -1)
        p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
        flat = x.reshape(1, len(x), -1)
        log_px = (flat * np.log(p) + (1 - flat) * np.log1p(-p)).sum(-1)  # (k, B)
        log_pz = (-0.5 * (z**2 + np.log(2 * np.pi))).sum(-1)
        log_qz = (-0.5 * (eps**2 + np.log(2 * np.pi)) - np.log(std)).sum(-1)
        kl = (-0.5 * (1 + log_var - mean**2 - np.exp(log_var))).sum(-1)
        log_w = log_px + log_pz - log_qz
        top = log_w.max(0)
        totals["recon"] += float((-log_px.mean(0)).sum())
        totals["kl"] += float(kl.sum())
        totals["elbo"] += float((log_px.mean(0) - kl).sum())
        totals["iwae"] += float((top + np.log(np.exp(log_w - top).mean(0))).sum())
    n = len(images)
    return {
        "test_elbo": totals["elbo"] / n,
        "test_recon_nats": totals["recon"] / n,
        "test_kl_nats": totals["kl"] / n,
        "test_iwae_k100": totals["iwae"] / n,
        "bound_images": n,
    }


def gan_parts(latent: int = 32, width: int = 64) -> tuple[keras.Model, keras.Model]:
    generator = keras.Sequential(
        [
            keras.Input(shape=(latent,)),
            layers.Dense(7 * 7 * width),
            layers.Reshape((7, 7, width)),
            layers.BatchNormalization(),
            layers.LeakyReLU(0.2),
            layers.Conv2DTranspose(width // 2, 4, strides=2, padding="same"),
            layers.BatchNormalization(),
            layers.LeakyReLU(0.2),
            layers.Conv2DTranspose(width // 4, 4, strides=2, padding="same"),
            layers.BatchNormalization(),
            layers.LeakyReLU(0.2),
            layers.Conv2D(1, 5, padding="same", activation="tanh"),
        ],
        name="generator",
    )
    discriminator = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(width // 2, 4, strides=2, padding="same"),
            layers.LeakyReLU(0.2),
            layers.Conv2D(width, 4, strides=2, padding="same"),
            layers.LeakyReLU(0.2),
            layers.Flatten(),
            layers.Dropout(0.4),
            layers.Dense(1),
        ],
        name="discriminator",
    )
    return generator, discriminator


class GAN(keras.Model):
    """Seed 3's loop: one discriminator step on generated (label 1) and real (label 0) images with
    noisy labels, then one generator step through the discriminator with the labels reversed."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.generator, self.discriminator, self.latent = generator, discriminator, latent
        self.seed_generator = keras.random.SeedGenerator(1337)
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)
        self.d_tracker, self.g_tracker = keras.metrics.Mean(name="d_loss"), keras.metrics.Mean(name="g_loss")

    def compile(self, d_optimizer, g_optimizer) -> None:
        super().compile()
        self.d_optimizer, self.g_optimizer = d_optimizer, g_optimizer

    @property
    def metrics(self):
        return [self.d_tracker, self.g_tracker]

    def train_step(self, real):
        n = tf.shape(real)[0]
        real = real * 2 - 1
        fake = self.generator(keras.random.normal((n, self.latent), seed=self.seed_generator), training=True)
        labels = tf.concat([tf.ones((n, 1)), tf.zeros((n, 1))], axis=0)
        labels += 0.05 * tf.random.uniform(tf.shape(labels))  # seed 3's label noise
        with tf.GradientTape() as tape:
            d_loss = self.bce(labels, self.discriminator(tf.concat([fake, real], axis=0), training=True))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        z = keras.random.normal((n, self.latent), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            logits = self.discriminator(self.generator(z, training=True), training=True)
            g_loss = self.bce(tf.zeros((n, 1)), logits)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_tracker.update_state(d_loss)
        self.g_tracker.update_state(g_loss)
        return {"d_loss": self.d_tracker.result(), "g_loss": self.g_tracker.result()}


def seed_vae_parts(latent: int = 2) -> tuple[keras.Model, keras.Model]:
    """Seed 3's VAE, as aelab's `vae`."""
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(32, 3, activation="relu", padding="same")(inputs)
    x = layers.Conv2D(64, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    encoder = vae_encoder(inputs, layers.Dense(32, activation="relu")(layers.Flatten()(x)), latent)
    latent_inputs = keras.Input(shape=(latent,))
    x = layers.Reshape((14, 14, 64))(layers.Dense(14 * 14 * 64, activation="relu")(latent_inputs))
    x = layers.Conv2DTranspose(32, 3, activation="relu", strides=2, padding="same")(x)
    outputs = layers.Conv2D(1, 3, activation="sigmoid", padding="same")(x)
    return encoder, keras.Model(latent_inputs, outputs, name="decoder")


def char_lstm(args, times: EpochTimes) -> dict:
    """Seed 3's char-LSTM on the text in ``args.data`` (train and test as alphabet indices)."""
    data = np.load(args.data)
    train, test, size = data["train"].astype(np.int32), data["test"].astype(np.int32), int(data["alphabet_size"])
    maxlen, step = 40, 3
    starts = np.arange(0, len(train) - maxlen, step)
    windows = train[starts[:, None] + np.arange(maxlen + 1)]
    dataset = (
        tf.data.Dataset.from_tensor_slices(windows)
        .shuffle(len(windows), seed=args.seed)
        .batch(128)
        .map(lambda w: (tf.one_hot(w[:, :-1], size), w[:, -1]), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    model = keras.Sequential([keras.Input((maxlen, size)), layers.LSTM(128), layers.Dense(size, activation="softmax")])
    model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="sparse_categorical_crossentropy")
    model.fit(dataset, epochs=args.epochs, callbacks=[times], verbose=2)
    test_windows = test[np.arange(0, len(test) - maxlen)[:, None] + np.arange(maxlen + 1)]
    nats = 0.0
    for first in range(0, len(test_windows), 1000):
        batch = test_windows[first : first + 1000]
        p = model.predict(tf.one_hot(batch[:, :-1], size), verbose=0).astype(np.float64)
        nats -= float(np.log(np.clip(p[np.arange(len(batch)), batch[:, -1]], 1e-12, 1)).sum())
    return {"test_bits_per_char": nats / len(test_windows) / math.log(2), "train_windows": len(windows)}


def conv_ae() -> keras.Model:
    """Seed 1's model (aelab's `conv-resize`), logits out."""
    image = keras.Input((28, 28, 1))
    x = image
    for width in (16, 8, 8):
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D(2, padding="same")(x)
    for size, width in ((7, 8), (14, 8), (28, 16)):
        x = layers.Resizing(size, size, interpolation="nearest")(x)
        x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    return keras.Model(image, layers.Conv2D(1, 3, padding="same")(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=["vae", "gan", "conv-ae", "seed-vae", "char-lstm"])
    parser.add_argument("--latent", type=int, default=2, help="the VAE's code size")
    parser.add_argument("--data", type=Path, required=True, help=".npz with uint8 x_train and x_test (N, 28, 28)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    times, result = EpochTimes(), {}
    if args.model == "char-lstm":
        result = char_lstm(args, times)
        args.out.mkdir(parents=True, exist_ok=True)
        result.update({"epoch_seconds": times.seconds, "keras": keras.__version__, "tensorflow": tf.__version__})
        (args.out / "result.json").write_text(json.dumps(result, indent=1))
        return
    data = np.load(args.data)
    x_train = (data["x_train"].astype(np.float32) / 255.0)[..., None]
    x_test = (data["x_test"].astype(np.float32) / 255.0)[..., None]
    if args.model == "conv-ae":
        x_val = (data["x_val"].astype(np.float32) / 255.0)[..., None]
        model = conv_ae()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.BinaryCrossentropy(from_logits=True))
        model.fit(
            x_train,
            x_train,
            epochs=args.epochs,
            batch_size=200,
            validation_data=(x_val, x_val),
            callbacks=[times],
            verbose=2,
        )
        result["test_bce"] = float(model.evaluate(x_test, x_test, batch_size=1000, verbose=0))
        args.out.mkdir(parents=True, exist_ok=True)
        result.update(
            {
                "epoch_seconds": times.seconds,
                "train_images": len(x_train),
                "keras": keras.__version__,
                "tensorflow": tf.__version__,
            }
        )
        (args.out / "result.json").write_text(json.dumps(result, indent=1))
        return
    if args.model in ("vae", "seed-vae"):
        encoder, decoder = vae_parts(args.latent) if args.model == "vae" else seed_vae_parts(args.latent)
        result["forward_macs"] = forward_macs(encoder, decoder)
        model = VAE(encoder, decoder)
        model.compile(optimizer=keras.optimizers.Adam())
        model.fit(x_train, epochs=args.epochs, batch_size=128, callbacks=[times], verbose=2)
        started = time.perf_counter()
        result.update(vae_bounds(encoder, decoder, x_test[:BOUND_IMAGES], args.seed))
        result["bounds_seconds"] = time.perf_counter() - started
        z = np.random.default_rng(args.seed).standard_normal((N_SAMPLES, args.latent)).astype(np.float32)
        samples = decoder.predict(z, batch_size=1000, verbose=0)
    else:
        generator, discriminator = gan_parts()
        result["forward_macs"] = forward_macs(generator, discriminator)
        model = GAN(generator, discriminator, latent=32)
        model.compile(
            keras.optimizers.Adam(2e-4, beta_1=0.5, clipvalue=1.0),
            keras.optimizers.Adam(2e-4, beta_1=0.5, clipvalue=1.0),
        )
        model.fit(x_train, epochs=args.epochs, batch_size=64, callbacks=[times], verbose=2)
        z = np.random.default_rng(args.seed).standard_normal((N_SAMPLES, 32)).astype(np.float32)
        samples = (generator.predict(z, batch_size=1000, verbose=0) + 1) / 2
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "samples.npy", np.clip(samples[..., 0], 0, 1).astype(np.float32))
    result.update(
        {
            "epoch_seconds": times.seconds,
            "train_images": len(x_train),
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
        }
    )
    (args.out / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
