package org.edgecnn.demo

import android.Manifest
import android.content.pm.PackageManager
import android.os.Bundle
import android.util.Log
import android.view.View
import android.widget.Button
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Camera preview + live inference. Model loading and inference share one background thread,
 * so a settings change (CPU/GPU, threads) never races a running frame. Every model problem
 * ends as a message on screen, never as a crash.
 */
class MainActivity : ComponentActivity() {
    private lateinit var preview: PreviewView
    private lateinit var overlay: OverlayView
    private lateinit var message: TextView
    private lateinit var delegateButton: Button
    private lateinit var threadsButton: Button

    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var settings = RunnerSettings()
    // Touched on the worker thread only.
    private var runner: ModelRunner? = null
    private var header = ""
    private var lastFrameNs = 0L
    private var fps = 0.0

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else showMessage(getString(R.string.camera_denied))
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        overlay = findViewById(R.id.overlay)
        message = findViewById(R.id.message)
        delegateButton = findViewById(R.id.delegate)
        threadsButton = findViewById(R.id.threads)
        delegateButton.setOnClickListener { applySettings(settings.copy(useGpu = !settings.useGpu)) }
        threadsButton.setOnClickListener {
            val next = when (settings.threads) { 1 -> 2; 2 -> 4; else -> 1 }
            applySettings(settings.copy(threads = next))
        }
        applySettings(settings)
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            askCamera.launch(Manifest.permission.CAMERA)
        }
    }

    private fun applySettings(next: RunnerSettings) {
        settings = next
        delegateButton.text = if (next.useGpu) "GPU" else "CPU"
        threadsButton.text = "threads: ${next.threads}"
        threadsButton.isEnabled = !next.useGpu
        showMessage(getString(R.string.loading))
        worker.execute { reload(next) }
    }

    private fun reload(next: RunnerSettings) {
        runner?.close()
        runner = null
        try {
            val model = ModelSource.load(this)
            val r = ModelRunner.open(model, next)
            runner = r
            val meta = model.metadata
            header = "${meta.name}: ${meta.task}, ${meta.quantization.ifEmpty { "?" }}, " +
                "${meta.input.width}x${meta.input.height}, ${r.backend}"
            fps = 0.0
            lastFrameNs = 0L
            runOnUiThread { message.visibility = View.GONE }
        } catch (e: ModelException) {
            showMessage(e.message ?: "model error")
        } catch (e: Exception) {
            Log.e(TAG, "model load failed", e)
            showMessage("Could not load the model: ${e.javaClass.simpleName}: ${e.message}")
        } catch (e: LinkageError) {
            // A missing native library (e.g. an ABI the LiteRT AAR lacks) must not end the app.
            Log.e(TAG, "model load failed", e)
            showMessage("LiteRT could not start on this device: ${e.message}")
        }
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            try {
                val provider = future.get()
                val previewUseCase = Preview.Builder().build()
                previewUseCase.setSurfaceProvider(preview.surfaceProvider)
                val analysis = ImageAnalysis.Builder()
                    .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                    .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                    .build()
                analysis.setAnalyzer(worker, ::analyze)
                provider.unbindAll()
                provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, previewUseCase, analysis)
            } catch (e: Exception) {
                Log.e(TAG, "camera start failed", e)
                showMessage("Could not start the camera: ${e.message}")
            }
        }, ContextCompat.getMainExecutor(this))
    }

    private fun analyze(image: ImageProxy) {
        image.use {
            val r = runner ?: return
            try {
                val result = r.run(it)
                val now = System.nanoTime()
                if (lastFrameNs != 0L) {
                    val instant = 1e9 / (now - lastFrameNs)
                    fps = if (fps == 0.0) instant else 0.9 * fps + 0.1 * instant
                }
                lastFrameNs = now
                val h = header
                val f = fps
                overlay.post { overlay.show(result, h, f) }
            } catch (e: Exception) {
                // One bad frame (or a model failing at run time) stops inference, not the app.
                Log.e(TAG, "inference failed", e)
                runner?.close()
                runner = null
                showMessage("Inference failed: ${e.javaClass.simpleName}: ${e.message}")
            }
        }
    }

    private fun showMessage(text: String) {
        runOnUiThread {
            overlay.clear()
            message.text = text
            message.visibility = View.VISIBLE
        }
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute { runner?.close(); runner = null }
        worker.shutdown()
    }

    private companion object {
        const val TAG = "edgecnn"
    }
}
