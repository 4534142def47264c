package org.edgecnn.demo

import android.os.SystemClock
import androidx.camera.core.ImageProxy
import org.edgecnn.core.Category
import org.edgecnn.core.Classify
import org.edgecnn.core.Decoder
import org.edgecnn.core.Detection
import org.edgecnn.core.InputLut
import org.edgecnn.core.ModelCheck
import org.edgecnn.core.OutputTensor
import org.edgecnn.core.Quant
import org.edgecnn.core.TensorType
import org.edgecnn.core.UnsupportedModelException
import org.edgecnn.core.dequantize
import org.edgecnn.core.writeInput
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** How to run the interpreter; changing either rebuilds it. */
data class RunnerSettings(val useGpu: Boolean = false, val threads: Int = 2)

/** What one camera frame produced, in upright-frame pixels, with the time of each stage. */
class FrameResult(
    val detections: List<Detection>,
    val categories: List<Category>,
    val frameWidth: Int,
    val frameHeight: Int,
    val preprocessMs: Double,
    val inferenceMs: Double,
    val postprocessMs: Double
)

/**
 * A LiteRT [Interpreter] over an edgecnn model plus the pre- and post-processing of `core`.
 *
 * CPU runs XNNPACK with [RunnerSettings.threads] threads. The GPU delegate is used only when
 * asked and when the device's compatibility list allows it; if it cannot be created or cannot
 * take the model, the runner falls back to the CPU and says why in [backend].
 */
class ModelRunner private constructor(
    private val model: LoadedModel,
    private val interpreter: Interpreter,
    private var gpu: GpuDelegate?,
    /** Human-readable backend actually in use, e.g. "CPU XNNPACK, 2 thread(s) (GPU not supported...)". */
    val backend: String
) : Closeable {
    private val meta = model.metadata
    private val topK = 5
    private val input: Tensor = interpreter.getInputTensor(0)
    private val inputType: TensorType = typeOf(input, "input")
    private val inputBuffer: ByteBuffer = ByteBuffer.allocateDirect(input.numBytes()).order(ByteOrder.nativeOrder())
    private val lut: InputLut
    private val converter: FrameConverter
    private val outputs = HashMap<Int, ByteBuffer>()
    private val outputTypes = ArrayList<TensorType>()
    private val outputQuant = ArrayList<Quant>()
    private val decoder: Decoder?

    init {
        val spec = meta.input
        val outputShapes = (0 until interpreter.outputTensorCount).map { interpreter.getOutputTensor(it).shape() }
        // The checked decoder: layouts that read their orientation from the shapes need the check.
        decoder = try {
            ModelCheck.tensors(model.name, meta, input.shape(), outputShapes)
        } catch (e: UnsupportedModelException) {
            throw ModelException(e.message ?: "${model.name} does not match its metadata")
        }
        lut = InputLut.build(spec, inputType, quantOf(input))
        converter = FrameConverter(spec.width, spec.height, spec.resize, spec.padValue)
        for (i in 0 until interpreter.outputTensorCount) {
            val t = interpreter.getOutputTensor(i)
            outputs[i] = ByteBuffer.allocateDirect(t.numBytes()).order(ByteOrder.nativeOrder())
            outputTypes.add(typeOf(t, "output $i"))
            outputQuant.add(quantOf(t))
        }
    }

    companion object {
        /**
         * Build the interpreter for [model] and check it against the metadata.
         *
         * @throws ModelException with a message for the screen when the model cannot run here.
         */
        fun open(model: LoadedModel, settings: RunnerSettings): ModelRunner {
            val buffer = ByteBuffer.allocateDirect(model.flatbuffer.size).order(ByteOrder.nativeOrder())
            buffer.put(model.flatbuffer).rewind()
            var note = ""
            if (settings.useGpu) {
                var delegate: GpuDelegate? = null
                try {
                    val compat = CompatibilityList()
                    if (compat.isDelegateSupportedOnThisDevice) {
                        delegate = GpuDelegate(compat.bestOptionsForThisDevice)
                        val interpreter = Interpreter(buffer, Interpreter.Options().addDelegate(delegate))
                        return checked(model, interpreter, delegate, "GPU delegate")
                    }
                    note = " (GPU not supported on this device)"
                } catch (e: ModelException) {
                    throw e
                } catch (e: Throwable) {
                    // The delegate failing to start or to take the model's ops must not end the
                    // app: fall back to the CPU and say so.
                    delegate?.close()
                    note = " (GPU failed: ${e.message?.lineSequence()?.firstOrNull() ?: e.javaClass.simpleName})"
                }
            }
            val options = Interpreter.Options().setNumThreads(settings.threads).setUseXNNPACK(true)
            val interpreter = try {
                Interpreter(buffer, options)
            } catch (e: IllegalArgumentException) {
                throw ModelException("${model.name} cannot be loaded by LiteRT: ${e.message}")
            }
            return checked(model, interpreter, null, "CPU XNNPACK, ${settings.threads} thread(s)$note")
        }

        private fun checked(model: LoadedModel, interpreter: Interpreter, gpu: GpuDelegate?, backend: String): ModelRunner {
            try {
                return ModelRunner(model, interpreter, gpu, backend)
            } catch (e: Exception) {
                interpreter.close()
                gpu?.close()
                throw if (e is ModelException) e else ModelException("${model.name}: ${e.message}")
            }
        }
    }

    /** Pre-process, invoke and post-process one frame. Called on the analysis thread only. */
    fun run(image: ImageProxy): FrameResult {
        val t0 = SystemClock.elapsedRealtimeNanos()
        val letterbox = converter.convert(image)
        writeInput(converter.pixels, meta.input.width, meta.input.height, meta.input.color, lut, inputBuffer)
        val t1 = SystemClock.elapsedRealtimeNanos()
        for (b in outputs.values) b.rewind()
        interpreter.runForMultipleInputsOutputs(arrayOf<Any>(inputBuffer), outputs)
        val t2 = SystemClock.elapsedRealtimeNanos()
        var detections = emptyList<Detection>()
        var categories = emptyList<Category>()
        if (decoder != null) {
            detections = decoder.detect(decoder.outputs.map { tensor(it) }, letterbox)
        } else {
            val out = outputs.getValue(0)
            out.rewind()
            val raw = dequantize(out, meta.labels.size, outputTypes[0], outputQuant[0])
            categories = Classify.topK(Classify.scores(raw, meta.outputActivation), meta.labels, topK)
        }
        val t3 = SystemClock.elapsedRealtimeNanos()
        return FrameResult(detections, categories, converter.uprightWidth, converter.uprightHeight,
            (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6)
    }

    private fun tensor(index: Int): OutputTensor {
        val b = outputs.getValue(index)
        b.rewind()
        return OutputTensor.of(b, outputTypes[index], outputQuant[index])
    }

    override fun close() {
        interpreter.close()
        gpu?.close()
        gpu = null
    }

    private fun typeOf(t: Tensor, what: String): TensorType = when (t.dataType()) {
        DataType.FLOAT32 -> TensorType.FLOAT32
        DataType.INT8 -> TensorType.INT8
        DataType.UINT8 -> TensorType.UINT8
        else -> throw ModelException("${model.name}: $what has type ${t.dataType()}; the app handles float32, int8 and uint8.")
    }

    private fun quantOf(t: Tensor): Quant {
        val q = t.quantizationParams()
        return Quant(q.scale, q.zeroPoint)
    }
}
